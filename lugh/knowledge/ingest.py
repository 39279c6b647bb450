"""Ingestion into a silo: files, folders, a project's own repository, uploaded bytes and text.

Each document is read, chunked, embedded and stored in one transaction; one that cannot be is
skipped with a sentence saying why, and the rest of the batch goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import numpy as np

from lugh.errors import UserError
from lugh.knowledge.chunking import (
    ChunkSizes,
    ParsedDocument,
    Unreadable,
    parse_document,
    size_limit,
)
from lugh.knowledge.chunking.base import sha256_bytes
from lugh.knowledge.embedders import Embedder, EmbedderError
from lugh.knowledge.files import files_in, read_file
from lugh.knowledge.results import IngestResult, Progress, ProgressCallback, Skipped
from lugh.knowledge.silos import DEFAULT_SILO, Silo, SiloService
from lugh.knowledge.store import DocumentStore
from lugh.logs import get_logger

log = get_logger("lugh.knowledge")

# Chunks gathered across small documents before one call to the embedder (fewer, fuller batches).
EMBED_BATCH = 64
# Most texts handed to the embedder at once, so a long PDF never holds all its vectors twice.
EMBED_SLICE = 256
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
# Errors of the database itself, not of one document: the whole ingestion stops on these.
_SYSTEMIC = (asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError)


@dataclass(frozen=True)
class _Item:
    path: str  # the document's path within its source
    file: Path | None = None  # read from this file, or
    data: bytes | None = None  # take these bytes
    root: Path | None = None  # a symbolic link may not lead outside this folder
    title: str | None = None  # given by whoever sent it, rather than read from the document


@dataclass
class _Batch:
    kind: str  # sources.kind
    uri: str
    items: list[_Item]
    prune: bool = False  # remove documents whose files are gone (a folder re-read in full)


@dataclass
class _Ready:
    item: _Item
    parsed: ParsedDocument
    content_hash: str
    size: int
    vectors: list[np.ndarray | None]  # kept from the previous version, or None: to embed


@dataclass
class _Tally:
    total: int
    on_progress: ProgressCallback | None
    done: int = 0
    chunks: int = 0

    def finished(self, path: str, chunks: int = 0) -> None:
        self.done += 1
        self.chunks += chunks
        if self.on_progress is not None:
            self.on_progress(Progress(self.done, self.total, self.chunks, path))


@dataclass
class _Run:
    silo: Silo
    result: IngestResult = field(default_factory=IngestResult)


class Ingestor:
    """Reads documents into a project's silo. Unchanged documents (same content hash) are left
    alone; a changed one has its chunks replaced atomically, keeping the vectors of chunks
    whose text did not change."""

    def __init__(
        self, pool: asyncpg.Pool, embedder: Embedder, silos: SiloService | None = None, *,
        sizes: ChunkSizes | None = None, embed_batch: int = EMBED_BATCH,
    ) -> None:
        self.embedder = embedder
        self.silos = silos or SiloService(pool, embedder)
        self.store = DocumentStore(pool)
        self.sizes = sizes or ChunkSizes.for_embedder(embedder.max_tokens)
        self.embed_batch = embed_batch

    async def ingest_paths(
        self, project: str, paths: Sequence[str | Path], *, silo: str = DEFAULT_SILO,
        on_progress: ProgressCallback | None = None,
    ) -> IngestResult:
        """Ingest files and folders (a folder inside a git work tree as git sees it: ignored
        files left out). A folder re-ingested loses the documents of files no longer there."""
        repo = Path(await self.store.repo_path(project)).resolve()
        batches, skipped = [], []
        for given in paths:
            path = Path(given).expanduser().resolve()
            if path.is_dir():
                items = [_Item(f.relative, f.path, root=path) for f in await files_in(path)]
                batches.append(_Batch("repo" if path == repo else "folder", str(path), items, True))
            elif path.is_file():
                batches.append(_Batch("file", str(path), [_Item(path.name, path)]))
            else:
                skipped.append(Skipped(str(given), f"There is no file or folder at {given}."))
        result = await self._run(project, silo, batches, on_progress)
        result.skipped[:0] = skipped
        return result

    async def ingest_repository(
        self, project: str, *, silo: str = DEFAULT_SILO, on_progress: ProgressCallback | None = None
    ) -> IngestResult:
        """Ingest the project's own repository (tracked and untracked files, not ignored ones)."""
        return await self.ingest_paths(
            project, [await self.store.repo_path(project)], silo=silo, on_progress=on_progress
        )

    async def ingest_bytes(
        self, project: str, filename: str, data: bytes, *, silo: str = DEFAULT_SILO,
        on_progress: ProgressCallback | None = None,
    ) -> IngestResult:
        """Ingest a file that arrived as bytes (a Telegram document, an MCP upload); sending a
        file of the same name again replaces it."""
        name = _UNSAFE_NAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
        name = name[-200:] or "upload"
        batch = _Batch("upload", f"upload:{name}", [_Item(name, data=data)])
        return await self._run(project, silo, [batch], on_progress)

    async def ingest_text(
        self, project: str, text: str, *, title: str | None = None, silo: str = DEFAULT_SILO
    ) -> IngestResult:
        """Ingest text (read as Markdown) under `title`; the same title again replaces it."""
        if title is None:
            first = next((line for line in text.splitlines() if line.strip()), "note")
            title = first.strip().lstrip("#").strip()[:80] or "note"
        name = _UNSAFE_NAME.sub("_", title)
        path = name if name.lower().endswith((".md", ".txt")) else f"{name}.md"
        item = _Item(path, data=text.encode("utf-8"), title=title)
        batch = _Batch("text", f"text:{title}", [item])
        return await self._run(project, silo, [batch], None)

    async def remove_source(self, project: str, uri: str, *, silo: str = DEFAULT_SILO) -> None:
        """Forget a source with its documents and chunks (the URI as `sources` lists it)."""
        if not await self.store.remove_source(project, silo, uri):
            raise UserError(f"The knowledge of project {project!r} has no source {uri!r}.")

    async def _run(
        self, project: str, silo_name: str, batches: list[_Batch],
        on_progress: ProgressCallback | None,
    ) -> IngestResult:
        run = _Run(await self.silos.get(project, silo_name))
        tally = _Tally(sum(len(b.items) for b in batches), on_progress)
        for batch in batches:
            source_id = await self.store.source_id(run.silo, batch.kind, batch.uri)
            await self._batch(run, source_id, batch, tally)
            if batch.prune:
                run.result.removed += await self.store.keep_only(
                    source_id, [item.path for item in batch.items]
                )
            await self.store.drop_if_empty(source_id)
        log.info("ingested", project=project, silo=silo_name, documents=run.result.documents,
                 unchanged=run.result.unchanged, chunks=run.result.chunks,
                 skipped=len(run.result.skipped), removed=run.result.removed)
        return run.result

    async def _batch(self, run: _Run, source_id: int, batch: _Batch, tally: _Tally) -> None:
        pending: list[_Ready] = []
        for item in batch.items:
            try:
                ready = await self._prepare(source_id, item)
            except EmbedderError:
                raise
            except Unreadable as e:
                await self.store.forget(source_id, item.path)
                run.result.skipped.append(Skipped(item.path, f"{item.path} {e}."))
                tally.finished(item.path)
                continue
            except Exception as e:
                log.exception("document could not be read", path=item.path)
                run.result.skipped.append(
                    Skipped(item.path, f"{item.path} could not be read ({_short(e)}).")
                )
                tally.finished(item.path)
                continue
            if ready is None:
                run.result.unchanged += 1
                tally.finished(item.path)
                continue
            pending.append(ready)
            if sum(v is None for r in pending for v in r.vectors) >= self.embed_batch:
                await self._store(run, source_id, pending, tally)
                pending = []
        if pending:
            await self._store(run, source_id, pending, tally)

    async def _prepare(self, source_id: int, item: _Item) -> _Ready | None:
        """The document read and chunked, or None when it is stored unchanged already."""
        data = item.data
        if data is None:
            assert item.file is not None
            data = await asyncio.to_thread(read_file, item.file, item.root, size_limit(item.path))
        content_hash = sha256_bytes(data)
        state = await self.store.state(source_id, item.path)
        if state is not None and state.same(content_hash):
            return None
        parsed = await asyncio.to_thread(
            parse_document, item.path, data, self.embedder.count_tokens, self.sizes
        )
        if item.title is not None:
            parsed = dataclasses.replace(parsed, title=item.title)
        kept = {} if state is None else await self.store.vectors(state.id)
        vectors = [kept.get(c.content_hash) for c in parsed.chunks]
        vectors = [v if v is not None and len(v) == self.embedder.dim else None for v in vectors]
        return _Ready(item, parsed, content_hash, len(data), vectors)

    async def _store(self, run: _Run, source_id: int, pending: list[_Ready], tally: _Tally) -> None:
        try:
            await self._embed(pending)
        except EmbedderError:
            raise
        except Exception as e:
            if len(pending) > 1:  # find the one document the embedder cannot take
                for ready in pending:
                    await self._store(run, source_id, [ready], tally)
                return
            self._failed(run, pending[0], e, tally)
            return
        for ready in pending:
            path, chunks = ready.item.path, ready.parsed.chunks
            try:
                await self.store.replace(
                    run.silo, source_id, path, ready.parsed, ready.content_hash, ready.size,
                    np.stack(ready.vectors),  # type: ignore[arg-type]
                )
            except _SYSTEMIC:
                raise
            except asyncpg.PostgresError as e:
                self._failed(run, ready, e, tally)
                continue
            run.result.documents += 1
            run.result.chunks += len(chunks)
            tally.finished(path, len(chunks))

    async def _embed(self, pending: list[_Ready]) -> None:
        """Fill in every missing vector of the pending documents, a slice at a time."""
        missing = [(r, i) for r in pending for i, v in enumerate(r.vectors) if v is None]
        for start in range(0, len(missing), EMBED_SLICE):
            part = missing[start : start + EMBED_SLICE]
            texts = [ready.parsed.chunks[i].embedding_text for ready, i in part]
            vectors = await self.embedder.embed(texts)
            if vectors.shape != (len(part), self.embedder.dim) or not np.isfinite(vectors).all():
                raise ValueError(
                    f"the embedder returned vectors of shape {vectors.shape}, not finite "
                    f"({len(part)}, {self.embedder.dim})"
                )
            for (ready, i), vector in zip(part, vectors):
                ready.vectors[i] = vector

    def _failed(self, run: _Run, ready: _Ready, error: Exception, tally: _Tally) -> None:
        path = ready.item.path
        log.error("document could not be stored", path=path, error=_short(error))
        run.result.skipped.append(Skipped(
            path,
            f"{path} could not be stored ({_short(error)}); nothing of it was written, so "
            "ingest it again once that is fixed.",
        ))
        tally.finished(path)


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else ""
    text = text or type(error).__name__
    return text if len(text) <= 160 else text[:159] + "…"
