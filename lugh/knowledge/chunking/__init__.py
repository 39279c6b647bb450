"""Chunking: documents (PDF, Markdown, text, source code) cut into located, hashed chunks."""

from lugh.knowledge.chunking.base import (
    CHUNKER_VERSION,
    Chunk,
    ChunkSizes,
    ParsedDocument,
    TokenCounter,
    Unreadable,
)
from lugh.knowledge.chunking.documents import is_secret, kind_of, parse_document, size_limit

__all__ = [
    "CHUNKER_VERSION",
    "Chunk",
    "ChunkSizes",
    "ParsedDocument",
    "TokenCounter",
    "Unreadable",
    "is_secret",
    "kind_of",
    "parse_document",
    "size_limit",
]
