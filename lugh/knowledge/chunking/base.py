"""What every chunker produces: chunks with a location and a hash, or a reason it cannot read."""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Bumped whenever chunking changes, so re-ingesting re-chunks documents it would otherwise skip.
CHUNKER_VERSION = 1

TokenCounter = Callable[[str], int]
HEADING_SEPARATOR = " › "
MAX_SYMBOLS_IN_CONTEXT = 5


class Unreadable(Exception):
    """A document cannot be ingested; `str()` is a phrase that completes "<name> …", such as
    "is encrypted with a password; remove the password and ingest it again"."""


@dataclass(frozen=True)
class ChunkSizes:
    """Chunk sizes in the embedder's tokens: aim at `target`, never exceed `limit` (except where
    one unbreakable line is longer), overlap split paragraphs by at most `overlap`."""

    target: int = 200
    limit: int = 254
    overlap: int = 30

    @classmethod
    def for_embedder(cls, max_tokens: int, target: int = 200) -> ChunkSizes:
        limit = max(32, min(max_tokens, 512))
        target = min(target, limit)
        return cls(target=target, limit=limit, overlap=max(0, target // 7))


@dataclass(frozen=True)
class Chunk:
    content: str
    location: dict[str, Any]
    # A heading path or a symbol; embedded with the content so a passage is found by its context.
    context: str = ""

    @property
    def embedding_text(self) -> str:
        return embedding_text(self.context, self.content)

    @property
    def content_hash(self) -> str:
        """sha256 of what is embedded: an unchanged chunk of a changed document keeps its vector."""
        return sha256_text(self.embedding_text)


@dataclass(frozen=True)
class ParsedDocument:
    kind: str  # markdown | text | code | pdf
    title: str | None
    chunks: list[Chunk]
    meta: dict[str, Any] = field(default_factory=dict)


def context_for(kind: str, path: str, location: dict[str, Any]) -> str:
    """What is embedded before a chunk's content: its heading path, or its file and symbols.
    Derived from stored fields only, so a silo can be re-embedded without its files."""
    if kind == "markdown":
        return HEADING_SEPARATOR.join(location.get("heading", ()))
    if kind == "code":
        symbols = ", ".join(location.get("symbols", ())[:MAX_SYMBOLS_IN_CONTEXT])
        return f"{path}: {symbols}" if symbols and path else symbols or path
    return ""


def embedding_text(context: str, content: str) -> str:
    return f"{context}\n{content}" if context else content


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def location_json(location: dict[str, Any]) -> str:
    return json.dumps(location, ensure_ascii=False, separators=(",", ":"))


class LineIndex:
    """Maps character offsets of a text to 1-based line numbers."""

    def __init__(self, text: str) -> None:
        starts = [0]
        find = text.find
        i = find("\n")
        while i != -1:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self.starts = starts

    def line(self, offset: int) -> int:
        return bisect_right(self.starts, offset)

    def lines(self, start: int, end: int) -> list[int]:
        """[first, last] line of the characters text[start:end] (end exclusive)."""
        return [self.line(start), self.line(max(start, end - 1))]
