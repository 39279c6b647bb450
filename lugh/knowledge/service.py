"""The knowledge base of every project in one service: what transports, agents and MCP call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from lugh.knowledge.ask import Answer, Complete, answer, top_chunks_for
from lugh.knowledge.embedders import Embedder
from lugh.knowledge.ingest import Ingestor
from lugh.knowledge.results import IngestResult, ProgressCallback
from lugh.knowledge.search import Filters, Hit, Searcher
from lugh.knowledge.silos import DEFAULT_SILO, Silo, SiloService
from lugh.knowledge.store import SourceInfo


class KnowledgeService:
    """Ingest into a project's silos, search them, and answer from them.

    `complete` is the language model's prompt completion once Lugh has one; without it
    `answer` returns the best passages with their sources instead.
    """

    def __init__(
        self, pool: asyncpg.Pool, embedder: Embedder, *, complete: Complete | None = None
    ) -> None:
        self.embedder = embedder
        self.silos = SiloService(pool, embedder)
        self.ingestor = Ingestor(pool, embedder, self.silos)
        self.searcher = Searcher(pool, embedder, self.silos)
        self.complete = complete

    async def ingest_paths(
        self, project: str, paths: Sequence[str | Path], *, silo: str = DEFAULT_SILO,
        on_progress: ProgressCallback | None = None,
    ) -> IngestResult:
        """Ingest files and folders on this machine."""
        return await self.ingestor.ingest_paths(project, paths, silo=silo, on_progress=on_progress)

    async def ingest_repository(
        self, project: str, *, silo: str = DEFAULT_SILO, on_progress: ProgressCallback | None = None
    ) -> IngestResult:
        """Ingest the project's own repository."""
        return await self.ingestor.ingest_repository(project, silo=silo, on_progress=on_progress)

    async def ingest_bytes(
        self, project: str, filename: str, data: bytes, *, silo: str = DEFAULT_SILO,
        on_progress: ProgressCallback | None = None,
    ) -> IngestResult:
        """Ingest a file received as bytes (Telegram, MCP)."""
        return await self.ingestor.ingest_bytes(
            project, filename, data, silo=silo, on_progress=on_progress
        )

    async def ingest_text(
        self, project: str, text: str, *, title: str | None = None, silo: str = DEFAULT_SILO
    ) -> IngestResult:
        """Ingest a note."""
        return await self.ingestor.ingest_text(project, text, title=title, silo=silo)

    async def remove_source(self, project: str, uri: str, *, silo: str = DEFAULT_SILO) -> None:
        """Forget a source and everything ingested from it."""
        await self.ingestor.remove_source(project, uri, silo=silo)

    async def sources(self, project: str, *, silo: str = DEFAULT_SILO) -> list[SourceInfo]:
        return await self.ingestor.store.sources(project, silo)

    async def reembed(self, project: str, *, silo: str = DEFAULT_SILO) -> Silo:
        """Re-embed a silo with the configured embedder (after LUGH_EMBEDDER changed)."""
        return await self.silos.reembed(project, silo)

    async def search(
        self, project: str, query: str, *, k: int = 5, silo: str = DEFAULT_SILO,
        filters: Filters | None = None,
    ) -> list[Hit]:
        return await self.searcher.search(project, query, k=k, silo=silo, filters=filters)

    async def query_knowledge(
        self, query: str, project: str, k: int = 5, *, silo: str = DEFAULT_SILO,
        source: str | None = None, path_prefix: str | None = None, kind: str | None = None,
    ) -> dict[str, Any]:
        """The agent and MCP tool: `{results: [{text, source, path, title, location, score}]}`."""
        hits = await self.search(
            project, query, k=k, silo=silo, filters=Filters(source, path_prefix, kind)
        )
        return {"results": [hit.to_dict() for hit in hits]}

    async def top_chunks_for(
        self, project: str, task: str, *, k: int = 5, silo: str = DEFAULT_SILO
    ) -> str:
        """Passages for an agent's first prompt, fenced as data ("" when nothing matches)."""
        return await top_chunks_for(self.searcher, project, task, k=k, silo=silo)

    async def answer(
        self, project: str, question: str, *, k: int = 5, silo: str = DEFAULT_SILO
    ) -> Answer:
        """`/ask`: an answer with citations, or the best passages when there is no model."""
        return await answer(
            self.searcher, project, question, complete=self.complete, k=k, silo=silo
        )
