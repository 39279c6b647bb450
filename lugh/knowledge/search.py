"""Hybrid retrieval inside one silo: HNSW vector search and Postgres full-text search, fused by
reciprocal rank. A query never sees another silo's chunks."""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np

from lugh.db import queries
from lugh.errors import UserError
from lugh.knowledge.embedders import Embedder
from lugh.knowledge.silos import DEFAULT_SILO, Silo, SiloService

Q = queries.load(__file__, "search")

# bench/knowledge.py, 300k chunks in 5 silos (120k down to 24k): 40 to 300 all search a silo in
# a few ms with iterative scans. 200 left the smaller silos at recall@10 0.945-0.95; 300 keeps
# every silo at 0.957 or more for about 2 ms (p50 7.5 ms against 5.6 ms).
EF_SEARCH = 300
CANDIDATES = 40  # from each retriever, before fusion
MAX_TEXT_MATCHES = 500  # full-text matches ranked at most; a common word matches thousands
MAX_K = 50
_RRF_K = 60
_BEST_RRF = 2 / (_RRF_K + 1)  # first in both lists


@dataclass(frozen=True)
class Filters:
    source: str | None = None  # a source URI, as listed by `sources`
    path_prefix: str | None = None  # documents whose path starts with this
    kind: str | None = None  # markdown | text | code | pdf

    def any(self) -> bool:
        return any(v is not None for v in (self.source, self.path_prefix, self.kind))

    def values(self) -> tuple[str | None, str | None, str | None]:
        return self.source, self.path_prefix, self.kind


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    text: str
    source: str  # the source's URI: a folder, a file, upload:<name>, text:<title>
    source_kind: str
    path: str  # the document's path within its source
    title: str | None
    kind: str
    location: dict[str, Any]  # page, heading path, line range, symbols
    score: float  # fused rank, 1.0 for first in both vector and full-text results
    similarity: float | None  # cosine similarity, when vector search found it

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "source": self.source,
            "path": self.path,
            "title": self.title,
            "location": self.location,
            "score": round(self.score, 4),
        }


class Searcher:
    """`search` for agents and people; `nearest` for the vector channel alone."""

    def __init__(
        self, pool: asyncpg.Pool, embedder: Embedder, silos: SiloService | None = None, *,
        ef_search: int = EF_SEARCH, candidates: int = CANDIDATES,
    ) -> None:
        self.pool = pool
        self.embedder = embedder
        self.silos = silos or SiloService(pool, embedder)
        self.ef_search = ef_search
        self.candidates = candidates

    async def search(
        self, project: str, query: str, *, k: int = 5, silo: str = DEFAULT_SILO,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """The `k` passages of the project's silo that best answer `query`."""
        query = query.strip()
        if not query:
            raise UserError("The question is empty; ask something to search the knowledge for.")
        # The silo's lookup rides along with the query's embedding, which takes far longer.
        embedding = asyncio.create_task(self.embedder.embed([query]))
        try:
            found = await self.silos.find(project, silo)
            if found is None:
                return []
            self.silos.check(found)
            vector = (await embedding)[0]
        finally:
            if not embedding.done():
                embedding.cancel()
            elif not embedding.cancelled():
                embedding.exception()  # seen: a failure nobody waits for any more is no error
        return await self.search_silo(found, query, vector, k=k, filters=filters)

    async def search_silo(
        self, silo: Silo, query: str, vector: np.ndarray, *, k: int = 5,
        filters: Filters | None = None,
    ) -> list[Hit]:
        """`search` with the query already embedded."""
        filters = filters or Filters()
        k = max(1, min(k, MAX_K))
        sql = _sql("hybrid", silo.dim, filters.any(), 7)
        args: list[Any] = [vector, silo.id, max(self.candidates, k), query, k, MAX_TEXT_MATCHES]
        if filters.any():
            args += filters.values()
        rows = await self._fetch(sql, args)
        return [_hit(row) for row in rows]

    async def nearest(
        self, silo: Silo, vector: np.ndarray, k: int = 10, filters: Filters | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine distance) of the `k` nearest chunks by the HNSW index."""
        filters = filters or Filters()
        sql = _sql("nearest", silo.dim, filters.any(), 4)
        args: list[Any] = [vector, silo.id, k, *(filters.values() if filters.any() else ())]
        rows = await self._fetch(sql, args)
        return [(row["id"], row["distance"]) for row in rows]

    async def _fetch(self, sql: str, args: list[Any]) -> list[asyncpg.Record]:
        """`sql` in a read-only transaction tuned for the HNSW scan: BEGIN and the settings go
        in one round trip (asyncpg's transaction() would spend one on each)."""
        async with self.pool.acquire() as conn:
            await conn.execute(self._begin)
            try:
                return await conn.fetch(sql, *args)
            finally:
                await conn.execute("COMMIT")  # read only: ends an aborted one just as well

    @functools.cached_property
    def _begin(self) -> str:
        # Iterative scans keep walking the graph until enough rows pass the silo filter, so a
        # small silo in a big table keeps its recall; relaxed order is re-sorted by the query.
        # Custom plans see the real silo and LIMIT, which a generic plan would have to guess.
        return (
            "BEGIN READ ONLY;"
            f" SET LOCAL hnsw.ef_search = {int(self.ef_search)};"
            " SET LOCAL hnsw.iterative_scan = relaxed_order;"
            " SET LOCAL plan_cache_mode = force_custom_plan"
        )


@functools.cache
def _sql(name: str, dim: int, filtered: bool, first_filter: int) -> str:
    documents = ""
    if filtered:
        documents = (
            Q.document_filter.replace("{source}", f"${first_filter}")
            .replace("{prefix}", f"${first_filter + 1}")
            .replace("{kind}", f"${first_filter + 2}")
        )
    return getattr(Q, name).replace("{dim}", str(int(dim))).replace("{documents}", documents)


def _hit(row: asyncpg.Record) -> Hit:
    location = row["location"]
    return Hit(
        chunk_id=row["id"],
        text=row["content"],
        source=row["source"],
        source_kind=row["source_kind"],
        path=row["path"],
        title=row["title"],
        kind=row["kind"],
        location=json.loads(location) if isinstance(location, str) else dict(location),
        score=float(row["rrf"]) / _BEST_RRF,
        similarity=None if row["distance"] is None else 1.0 - float(row["distance"]),
    )
