"""Source code: split along functions and classes with tree-sitter (Python, JavaScript,
TypeScript); a definition too long for one chunk is split along its members, small neighbours
are joined. Other languages fall back to blocks of lines."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import tree_sitter
import tree_sitter_javascript
import tree_sitter_python
import tree_sitter_typescript

from lugh.knowledge.chunking.base import (
    Chunk,
    ChunkSizes,
    LineIndex,
    TokenCounter,
    context_for,
)
from lugh.knowledge.chunking.text import chunk_text, pack, spans

PARSED_LANGUAGES = ("python", "javascript", "typescript", "tsx")

# Nodes that define something a reader would look up by name.
_DEFINITIONS = {
    "function_definition", "class_definition",  # Python
    "function_declaration", "generator_function_declaration", "class_declaration",
    "method_definition", "lexical_declaration", "variable_declaration",  # JavaScript
    "interface_declaration", "type_alias_declaration", "enum_declaration",
    "abstract_class_declaration", "module", "internal_module",  # TypeScript
}
# Nodes that wrap one definition (decorators, `export`) and are named after it.
_WRAPPERS = {"decorated_definition", "export_statement"}


@dataclass(frozen=True)
class _Unit:
    start: int  # character offsets, end exclusive
    end: int
    tokens: int
    symbols: tuple[str, ...]
    opens: bool = False  # first part of a node split further: starts a chunk, never ends one


def chunk_code(
    text: str, language: str, count: TokenCounter, sizes: ChunkSizes, *, path: str = ""
) -> list[Chunk]:
    """Chunks of a source file, each located by line range and the symbols it defines."""
    if language not in PARSED_LANGUAGES:
        return chunk_text(text, count, sizes, context=context_for("code", path, {}))
    try:
        units = _Splitter(text, count, sizes).split(_parse(text, language).root_node)
    except RecursionError:  # nesting deeper than Python's stack: plain blocks of lines will do
        return chunk_text(text, count, sizes, context=context_for("code", path, {}))
    lines = LineIndex(text)
    chunks = []
    for unit in _merge(units, sizes.target):
        location: dict[str, Any] = {"lines": lines.lines(unit.start, unit.end)}
        if unit.symbols:
            location["symbols"] = list(unit.symbols)
        context = context_for("code", path, location)
        chunks.append(Chunk(text[unit.start : unit.end], location, context))
    return chunks


class _Splitter:
    def __init__(self, text: str, count: TokenCounter, sizes: ChunkSizes) -> None:
        self.text = text
        self.count = count
        self.sizes = sizes
        self.row_starts = LineIndex(text).starts  # rows split at "\n" only, as tree-sitter's

    def split(self, root: Any) -> list[_Unit]:
        if not self.text.strip():
            return []
        return self._node(root, 0, len(self.row_starts) - 1, "", whole=False)

    def _node(
        self, node: Any, first: int, last: int, scope: str, *, whole: bool = True
    ) -> list[_Unit]:
        """Units of rows first..last of `node`: the node whole when it fits (and `whole`), else
        its children's units with the rows between them."""
        start, end = self._span(first, last)
        if end <= start:
            return []
        label = _label(node, scope)
        tokens = self.count(self.text[start:end]) if whole else self.sizes.limit + 1
        if tokens <= self.sizes.limit:
            symbol = label or scope
            return [_Unit(start, end, tokens, (symbol,) if symbol else ())]
        inner = scope if node.type in _WRAPPERS else (label or scope)
        children = [
            c for c in node.named_children if c.end_point.row >= first and c.start_point.row <= last
        ]
        if not children:
            return self._lines(first, last, inner)
        units: list[_Unit] = []
        cursor = first
        for child in children:
            child_first = max(child.start_point.row, cursor)
            child_last = min(child.end_point.row, last)
            if child_last < cursor:
                continue
            if child_first > cursor:
                units += self._lines(cursor, child_first - 1, inner)
            units += self._node(child, child_first, child_last, inner)
            cursor = child_last + 1
        if cursor <= last:
            units += self._lines(cursor, last, inner)
        if label is not None and units:  # a split definition starts its own chunk
            head = units[0]
            units[0] = _Unit(head.start, head.end, head.tokens, head.symbols, opens=True)
        return units

    def _lines(self, first: int, last: int, symbol: str) -> list[_Unit]:
        start, end = self._span(first, last)
        if end <= start:
            return []
        symbols = (symbol,) if symbol else ()
        pieces = pack(spans(self.text, start, end, self.count, self.sizes), self.sizes)
        return [_Unit(s, e, self.count(self.text[s:e]), symbols) for s, e in pieces]

    def _span(self, first: int, last: int) -> tuple[int, int]:
        """Character offsets of rows first..last without surrounding blank space."""
        start = self.row_starts[first]
        end = self.row_starts[last + 1] if last + 1 < len(self.row_starts) else len(self.text)
        while start < end and self.text[start] in " \t\r\n\f\v":
            start += 1
        while end > start and self.text[end - 1].isspace():
            end -= 1
        # Keep a first line's indentation so a method reads as it does in the file.
        while start > 0 and self.text[start - 1] in " \t":
            start -= 1
        return start, end


def _merge(units: list[_Unit], target: int) -> list[_Unit]:
    """Neighbouring units joined while the result stays within `target` tokens."""
    merged: list[_Unit] = []
    for unit in units:
        last = merged[-1] if merged else None
        if last is not None and not unit.opens and last.tokens + unit.tokens <= target:
            symbols = last.symbols + tuple(s for s in unit.symbols if s not in last.symbols)
            merged[-1] = _Unit(last.start, unit.end, last.tokens + unit.tokens, symbols)
        else:
            merged.append(unit)
    return merged


def _label(node: Any, scope: str) -> str | None:
    """The qualified name a definition (or a wrapper of one) introduces, or None."""
    if node.type in _WRAPPERS:
        inner = node.child_by_field_name("definition") or node.child_by_field_name("declaration")
        return _label(inner, scope) if inner is not None else None
    if node.type not in _DEFINITIONS:
        return None
    name = node.child_by_field_name("name")
    if name is None and node.type in ("lexical_declaration", "variable_declaration"):
        declarator = next((c for c in node.named_children if c.type == "variable_declarator"), None)
        name = declarator.child_by_field_name("name") if declarator is not None else None
    if name is None or name.text is None:
        return None
    own = name.text.decode("utf-8", "replace")
    return f"{scope}.{own}" if scope else own


@functools.cache
def _language(name: str) -> tree_sitter.Language:
    if name == "python":
        return tree_sitter.Language(tree_sitter_python.language())
    if name == "javascript":
        return tree_sitter.Language(tree_sitter_javascript.language())
    if name == "tsx":
        return tree_sitter.Language(tree_sitter_typescript.language_tsx())
    return tree_sitter.Language(tree_sitter_typescript.language_typescript())


def _parse(text: str, language: str) -> tree_sitter.Tree:
    # A parser per call: tree-sitter parsers are not safe to share between threads.
    return tree_sitter.Parser(_language(language)).parse(text.encode("utf-8", "surrogatepass"))
