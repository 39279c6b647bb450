"""Markdown: one section per heading, chunked as text, each chunk keeping its heading path."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lugh.knowledge.chunking.base import (
    Chunk,
    ChunkSizes,
    LineIndex,
    TokenCounter,
    context_for,
)
from lugh.knowledge.chunking.text import pack, spans

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class Section:
    start: int  # offset of the section's first character (its heading line)
    body: int  # offset just after the heading
    end: int
    path: tuple[str, ...]  # headings from the top, this section's own last


def chunk_markdown(
    text: str, count: TokenCounter, sizes: ChunkSizes
) -> tuple[str | None, list[Chunk]]:
    """The document's title (its first level-1 heading) and its chunks, each located by heading
    path and line range."""
    lines = LineIndex(text)
    chunks: list[Chunk] = []
    title = None
    for section in sections(text):
        if title is None and len(section.path) == 1:
            title = section.path[0]
        if not text[section.body : section.end].strip():
            continue
        for s, e in pack(spans(text, section.start, section.end, count, sizes), sizes):
            location: dict = {"lines": lines.lines(s, e)}
            if section.path:
                location = {"heading": list(section.path), **location}
            chunks.append(Chunk(text[s:e], location, context_for("markdown", "", location)))
    return title, chunks


def sections(text: str) -> list[Section]:
    """Sections split at ATX (`# x`) and setext (`x` over `===`) headings outside code fences."""
    found: list[tuple[int, int, int, str]] = []  # (offset, body offset, level, heading)
    fence: str | None = None
    offset = 0
    previous: tuple[int, str] | None = None  # offset and text of a candidate setext heading line
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        opening = _FENCE.match(bare)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
            previous = None
        elif opening:
            fence = opening.group(1)
            previous = None
        elif atx := _ATX.match(bare):
            heading = (atx.group(2) or "").strip()
            found.append((offset, offset + len(line), len(atx.group(1)), heading))
            previous = None
        elif previous is not None and (setext := _SETEXT.match(bare)):
            level = 1 if setext.group(1)[0] == "=" else 2
            found.append((previous[0], offset + len(line), level, previous[1]))
            previous = None
        else:
            plain = bare.strip() and not bare.startswith("    ")  # not blank, not indented code
            previous = (offset, bare.strip()) if plain else None
        offset += len(line)

    out: list[Section] = []
    path: list[tuple[int, str]] = []
    start, body, current = 0, 0, ()
    for heading_offset, body_offset, level, heading in found:
        if heading_offset > start:
            out.append(Section(start, body, heading_offset, current))
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, heading))
        start, body, current = heading_offset, body_offset, tuple(h for _, h in path if h)
    out.append(Section(start, body, len(text), current))
    return out

