"""A project's knowledge silos: each holds embeddings of one embedder, so its dimension is fixed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import numpy as np

from lugh.db import queries
from lugh.errors import NotFound, UserError
from lugh.knowledge.embedders import Embedder
from lugh.logs import get_logger

Q = queries.load(__file__, "silos")
log = get_logger("lugh.knowledge")

DEFAULT_SILO = "default"
SILO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
REEMBED_BATCH = 256


@dataclass(frozen=True)
class Silo:
    id: int
    project_id: int
    project: str
    name: str
    embedder: str
    dim: int


class InvalidSiloName(UserError):
    """A silo name breaks the naming rules."""


class EmbedderMismatch(UserError):
    """The silo's vectors come from another embedder than the configured one."""

    def __init__(self, silo: Silo, embedder: str, dim: int) -> None:
        super().__init__(
            f"The knowledge silo {silo.name!r} of project {silo.project!r} holds vectors from "
            f"{silo.embedder} ({silo.dim} dimensions) but Lugh now embeds with {embedder} "
            f"({dim} dimensions); set LUGH_EMBEDDER back, or re-embed the silo with "
            f"`lugh ingest --reembed --project {silo.project}`."
        )
        self.silo = silo


def validate_silo_name(name: str) -> str:
    if not SILO_NAME.fullmatch(name):
        shown = repr(name if len(name) <= 40 else name[:39] + "…")
        raise InvalidSiloName(
            f"{shown} is not a valid silo name: use 1 to 63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (for example 'docs')."
        )
    return name


def _silo(row: asyncpg.Record) -> Silo:
    return Silo(**dict(row))


class SiloService:
    """Find or create a project's silos, and re-embed one when the embedder changes."""

    def __init__(self, pool: asyncpg.Pool, embedder: Embedder) -> None:
        self.pool = pool
        self.embedder = embedder

    async def get(self, project: str, name: str = DEFAULT_SILO) -> Silo:
        """The silo, checked against the configured embedder; created on first use."""
        silo = await self.find(project, name)
        if silo is None:
            validate_silo_name(name)
            row = await self.pool.fetchrow(
                Q.insert_silo, project, name, self.embedder.name, self.embedder.dim
            )
            if row is not None:
                log.info("silo created", project=project, silo=name, embedder=self.embedder.name)
                return _silo(row)
            silo = await self.find(project, name)  # created meanwhile by someone else
            if silo is None:
                raise NotFound(f"There is no project named {project!r}.")
        self.check(silo)
        return silo

    async def find(self, project: str, name: str = DEFAULT_SILO) -> Silo | None:
        """The silo as stored, whatever its embedder; None when it does not exist yet."""
        row = await self.pool.fetchrow(Q.silo, project, name)
        if row is None and not await self.pool.fetchval(Q.project_exists, project):
            raise NotFound(f"There is no project named {project!r}.")
        return None if row is None else _silo(row)

    async def list(self, project: str) -> list[Silo]:
        if not await self.pool.fetchval(Q.project_exists, project):
            raise NotFound(f"There is no project named {project!r}.")
        return [_silo(row) for row in await self.pool.fetch(Q.silos_of_project, project)]

    async def remove(self, project: str, name: str) -> None:
        """Delete the silo with its sources, documents and chunks."""
        if await self.pool.fetchval(Q.delete_silo, project, name) is None:
            raise NotFound(f"Project {project!r} has no knowledge silo named {name!r}.")

    def check(self, silo: Silo) -> None:
        if (silo.embedder, silo.dim) != (self.embedder.name, self.embedder.dim):
            raise EmbedderMismatch(silo, self.embedder.name, self.embedder.dim)

    async def reembed(
        self, project: str, name: str = DEFAULT_SILO,
        on_progress: Callable[[int], None] | None = None,
    ) -> Silo:
        """Re-compute every vector of the silo with the configured embedder, in one transaction:
        until it commits, searches keep using the old vectors."""
        # Imported here: chunking loads pypdf and tree-sitter, which finding a silo never needs.
        from lugh.knowledge.chunking.base import context_for, embedding_text

        silo = await self.find(project, name)
        if silo is None:
            return await self.get(project, name)
        done = 0
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.fetchrow(Q.lock_silo, silo.id)
            after = 0
            while rows := await conn.fetch(Q.chunks_to_embed, silo.id, after, REEMBED_BATCH):
                texts = [
                    embedding_text(context_for(r["kind"], r["path"], _json(r["location"])),
                                   r["content"])
                    for r in rows
                ]
                vectors = await self.embedder.embed(texts)
                await conn.executemany(
                    Q.set_chunk_embedding,
                    [(r["id"], np.asarray(v, np.float32)) for r, v in zip(rows, vectors)],
                )
                after = rows[-1]["id"]
                done += len(rows)
                if on_progress is not None:
                    on_progress(done)
            await conn.execute(Q.set_silo_embedder, silo.id, self.embedder.name, self.embedder.dim)
        log.info("silo re-embedded", project=project, silo=name, chunks=done,
                 embedder=self.embedder.name)
        return Silo(silo.id, silo.project_id, silo.project, silo.name, self.embedder.name,
                    self.embedder.dim)


def _json(value: object) -> dict:
    return json.loads(value) if isinstance(value, str) else dict(value)  # type: ignore[arg-type]
