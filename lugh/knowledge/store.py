"""Writing documents and their chunks: each document replaced in one transaction, or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from lugh.db import queries
from lugh.errors import NotFound
from lugh.knowledge.chunking import CHUNKER_VERSION, Chunk, ParsedDocument
from lugh.knowledge.chunking.base import location_json
from lugh.knowledge.silos import EmbedderMismatch, Silo

Q = queries.load(__file__, "store")

CHUNK_COLUMNS = (
    "document_id", "silo_id", "ordinal", "content", "content_hash", "location", "embedding"
)


@dataclass(frozen=True)
class SourceInfo:
    id: int
    kind: str
    uri: str
    documents: int
    chunks: int
    created_at: datetime
    updated_at: datetime | None


@dataclass(frozen=True)
class DocumentState:
    id: int
    content_hash: str
    chunker: str | None

    def same(self, content_hash: str) -> bool:
        return self.content_hash == content_hash and self.chunker == str(CHUNKER_VERSION)


class DocumentStore:
    """Sources, documents and chunks of a silo, as rows."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def source_id(self, silo: Silo, kind: str, uri: str) -> int:
        return await self.pool.fetchval(Q.source_id, silo.id, kind, uri)

    async def repo_path(self, project: str) -> str:
        path = await self.pool.fetchval(Q.project_repo_path, project)
        if path is None:
            raise NotFound(f"There is no project named {project!r}.")
        return path

    async def state(self, source_id: int, path: str) -> DocumentState | None:
        row = await self.pool.fetchrow(Q.document_state, source_id, path)
        return None if row is None else DocumentState(**dict(row))

    async def vectors(self, document_id: int) -> dict[str, np.ndarray]:
        """The stored vector of each chunk of a document, by chunk hash."""
        rows = await self.pool.fetch(Q.chunk_vectors, document_id)
        return {r["content_hash"]: r["embedding"].to_numpy() for r in rows}

    async def replace(
        self, silo: Silo, source_id: int, path: str, parsed: ParsedDocument,
        content_hash: str, size: int, vectors: np.ndarray,
    ) -> None:
        """Store the document with exactly these chunks, atomically."""
        meta: dict[str, Any] = {
            **parsed.meta, "chunker": str(CHUNKER_VERSION), "chunks": len(parsed.chunks)
        }
        title = parsed.title or path.rsplit("/", 1)[-1]
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(Q.silo_for_write, silo.id)
            if row is None:
                raise NotFound(f"The knowledge silo {silo.name!r} was removed meanwhile.")
            if (row["embedder"], row["dim"]) != (silo.embedder, silo.dim):
                stored = Silo(silo.id, silo.project_id, silo.project, silo.name, row["embedder"],
                              row["dim"])
                raise EmbedderMismatch(stored, silo.embedder, silo.dim)
            document_id = await conn.fetchval(
                Q.upsert_document, source_id, silo.id, path, parsed.kind, title, content_hash,
                size, location_json(meta),
            )
            await conn.execute(Q.delete_chunks_of_document, document_id)
            await conn.copy_records_to_table(
                "chunks",
                records=_records(document_id, silo.id, parsed.chunks, vectors),
                columns=CHUNK_COLUMNS,
            )

    async def forget(self, source_id: int, path: str) -> None:
        await self.pool.execute(Q.delete_document, source_id, path)

    async def keep_only(self, source_id: int, paths: list[str]) -> int:
        """Remove the source's documents whose paths are not in `paths`; how many went."""
        status = await self.pool.execute(Q.delete_documents_except, source_id, paths)
        return int(status.split()[-1])

    async def drop_if_empty(self, source_id: int) -> None:
        """A source none of whose documents could be read leaves no row behind."""
        await self.pool.execute(Q.delete_source_if_empty, source_id)

    async def remove_source(self, project: str, silo: str, uri: str) -> bool:
        return await self.pool.fetchval(Q.delete_source, project, silo, uri) is not None

    async def sources(self, project: str, silo: str) -> list[SourceInfo]:
        rows = await self.pool.fetch(Q.sources_of_silo, project, silo)
        return [SourceInfo(**dict(row)) for row in rows]


def _records(document_id: int, silo_id: int, chunks: list[Chunk], vectors: np.ndarray):
    for ordinal, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
        yield (document_id, silo_id, ordinal, chunk.content, chunk.content_hash,
               location_json(chunk.location), vector)
