"""Plain text: paragraphs packed into chunks of about `target` tokens; a paragraph too long for
one chunk is cut between sentences, with a small overlap so no sentence loses its neighbour."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lugh.knowledge.chunking.base import Chunk, ChunkSizes, LineIndex, TokenCounter

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
# After a sentence's end (and any closing quote or bracket), or at a line break.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;:])[\"')\]]*[ \t]+|\n")
_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Span:
    start: int
    end: int  # exclusive
    tokens: int
    continues: bool  # the previous span is an earlier part of the same paragraph


def chunk_text(
    text: str, count: TokenCounter, sizes: ChunkSizes, *, context: str = ""
) -> list[Chunk]:
    """Chunks of `text`, each located by its line range."""
    lines = LineIndex(text)
    return [
        Chunk(text[s:e], {"lines": lines.lines(s, e)}, context)
        for s, e in pack(spans(text, 0, len(text), count, sizes), sizes)
    ]


def spans(text: str, start: int, end: int, count: TokenCounter, sizes: ChunkSizes) -> list[Span]:
    """The paragraphs of text[start:end], each cut into pieces of at most `limit` tokens when
    longer than `target`."""
    out: list[Span] = []
    for ps, pe in _pieces(text, start, end, _PARAGRAPH_BREAK):
        tokens = count(text[ps:pe])
        if tokens <= sizes.target:
            out.append(Span(ps, pe, tokens, False))
            continue
        first = True
        for ss, se in _pieces(text, ps, pe, _SENTENCE_BREAK):
            t = count(text[ss:se])
            if t <= sizes.limit:
                parts = [(ss, se, t)]
            else:
                parts = windows(text, ss, se, t, count, sizes.limit)
            for ws, we, wt in parts:
                out.append(Span(ws, we, wt, not first))
                first = False
    return out


def pack(items: list[Span], sizes: ChunkSizes) -> list[tuple[int, int]]:
    """Consecutive spans joined greedily into chunks of at most `target` tokens (a single longer
    span stands alone); returns (start, end) offsets."""
    chunks: list[tuple[int, int]] = []
    current: list[Span] = []
    tokens = 0
    for span in items:
        if current and tokens + span.tokens > sizes.target:
            chunks.append((current[0].start, current[-1].end))
            carried = _overlap(current, span, sizes) if span.continues else []
            current, tokens = carried, sum(s.tokens for s in carried)
        current.append(span)
        tokens += span.tokens
    if current:
        chunks.append((current[0].start, current[-1].end))
    return chunks


def windows(
    text: str, start: int, end: int, tokens: int, count: TokenCounter, limit: int
) -> list[tuple[int, int, int]]:
    """text[start:end] (`tokens` long) cut at whitespace into pieces of at most `limit` tokens."""
    out = []
    chars_per_token = max(1.0, (end - start) / max(tokens, 1))
    while start < end:
        size = max(1, int(limit * chars_per_token * 0.9))
        while True:
            cut = min(end, start + size)
            if cut < end:
                space = _last_space(text, start + size // 2, cut)
                cut = space if space is not None else cut
            t = count(text[start:cut])
            if t <= limit or size == 1:
                break
            size = max(1, int(size * 0.8))
        piece_start, piece_end = _strip(text, start, cut)
        if piece_end > piece_start:
            out.append((piece_start, piece_end, t))
        start = cut
    return out


def _overlap(current: list[Span], following: Span, sizes: ChunkSizes) -> list[Span]:
    """The tail of `current` (within its paragraph) worth repeating before `following`."""
    carried: list[Span] = []
    tokens = 0
    for span in reversed(current):
        if tokens + span.tokens > sizes.overlap:
            break
        carried.insert(0, span)
        tokens += span.tokens
        if not span.continues:
            break
    if tokens + following.tokens > sizes.limit:
        return []
    return carried


def _pieces(text: str, start: int, end: int, separator: re.Pattern[str]) -> list[tuple[int, int]]:
    """Non-blank pieces of text[start:end] between matches of `separator`, stripped."""
    out = []
    position = start
    for match in separator.finditer(text, start, end):
        s, e = _strip(text, position, match.end())
        if e > s:
            out.append((s, e))
        position = match.end()
    s, e = _strip(text, position, end)
    if e > s:
        out.append((s, e))
    return out


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _last_space(text: str, low: int, high: int) -> int | None:
    for i in range(high, low, -1):
        if _SPACE.match(text, i - 1):
            return i
    return None
