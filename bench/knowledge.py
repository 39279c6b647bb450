"""Knowledge benchmarks: ingestion throughput end to end, and query latency and recall at scale.

    python bench/knowledge.py [--sizes 100000,300000] [--queries 200]

Prints one JSON line:
- `ingest`: a copy of an installed package's source tree (click) and a real PDF (one shipped
  under /usr/share/doc, else one written here from the standard library's docstrings), each
  ingested end to end (read, chunk, embed with the local embedder, store): chunks per second.
- `scale`: for each size, chunks spread unevenly over 5 projects' silos (40/25/15/12/8 %),
  loaded with COPY, indexes built after loading. Vectors are embeddings of real sentences from
  the standard library's docstrings, mixed in pairs with a little noise; each chunk's text is
  its two sentences. Queries are held-out sentences. Reported: HNSW recall@10 inside the silo
  against exact search (numpy), per silo and overall, and with iterative scans off; search-only
  latency (the vector channel, and the full hybrid SQL with the query already embedded); and
  `query_knowledge` end to end (silo lookup, query embedding, hybrid SQL), p50/p99 in ms.

Runs its own embedded Postgres in a temporary directory, removed afterwards.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import io
import json
import random
import re
import shutil
import statistics
import sysconfig
import tempfile
import textwrap
import time
from pathlib import Path

import asyncpg
import numpy as np

from lugh.db.database import create_pool
from lugh.db.embedded import EmbeddedPostgres
from lugh.db.migrations import migrate
from lugh.knowledge.embedders.local import LocalEmbedder
from lugh.knowledge.search import Searcher, _sql
from lugh.knowledge.service import KnowledgeService

SILO_SHARES = (0.40, 0.25, 0.15, 0.12, 0.08)
# Real sentences whose embeddings the bulk vectors are mixed from: 300k chunks make ~15 of each.
BASE_SENTENCES = 20_000
CHUNKS_PER_DOCUMENT = 50
COPY_BATCH = 20_000
NOISE = 0.25
EF_SEARCH_TRIED = (40, 100, 200, 300)
REPOSITORY_PACKAGE = "click"
REAL_PDFS = ("/usr/share/doc/libtasn1-doc/libtasn1.pdf",)
CHUNK_COLUMNS = (
    "document_id", "silo_id", "ordinal", "content", "content_hash", "location", "embedding"
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def docstrings(roots: list[Path], limit: int | None = None) -> list[str]:
    """Docstrings of modules, functions and classes under `roots`, read with ast (no imports),
    in a fixed order, until `limit` characters."""
    out, size = [], 0
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
                continue
            for node in ast.walk(tree):
                kinds = ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef
                if isinstance(node, kinds) and (doc := ast.get_docstring(node)) and len(doc) > 80:
                    out.append(" ".join(doc.split()))
                    size += len(out[-1])
            if limit is not None and size >= limit:
                return out
    return out


def stdlib_docstrings() -> list[str]:
    return docstrings([Path(sysconfig.get_paths()["stdlib"])], limit=3_000_000)


def sentences(n: int) -> list[str]:
    """n distinct sentences (6 to 40 words) from the docstrings of the standard library and
    the installed packages, in a fixed shuffled order."""
    paths = sysconfig.get_paths()
    seen: set[str] = set()
    for doc in docstrings([Path(paths["stdlib"]), Path(paths["purelib"])], limit=400 * n):
        for sentence in _SENTENCE.split(doc):
            if 6 <= len(sentence.split()) <= 40 and sentence.isascii():
                seen.add(sentence)
    out = sorted(seen)
    random.Random(7).shuffle(out)
    return out[:n]


def generated_pdf(paragraphs: list[str], pages: int) -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    }))
    text = iter(p.encode("latin-1", "ignore").decode("latin-1") for p in paragraphs)
    for _ in range(pages):
        lines: list[str] = []
        while len(lines) < 55:
            lines += textwrap.wrap(next(text), 95) + [""]
        shown = " ".join(
            "({}) Tj T*".format(line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)"))
            for line in lines[:55]
        )
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 9 Tf 11 TL 50 760 Td {shown} ET".encode("latin-1"))
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Contents")] = writer._add_object(stream.flate_encode())
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def bench_ingestion(knowledge: KnowledgeService, pool, work: Path) -> dict:
    package = Path(sysconfig.get_paths()["purelib"]) / REPOSITORY_PACKAGE
    repo = work / REPOSITORY_PACKAGE
    shutil.copytree(package, repo, ignore=shutil.ignore_patterns("__pycache__"))
    await pool.execute("INSERT INTO projects (name, repo_path) VALUES ('ingest', $1)", str(repo))

    start = time.perf_counter()
    result = await knowledge.ingest_paths("ingest", [repo])
    seconds = time.perf_counter() - start
    repository = {
        "source": f"site-packages/{REPOSITORY_PACKAGE}", "documents": result.documents,
        "chunks": result.chunks, "skipped": len(result.skipped), "seconds": round(seconds, 2),
        "chunks_per_s": round(result.chunks / seconds, 1),
    }
    start = time.perf_counter()
    again = await knowledge.ingest_paths("ingest", [repo])
    repository["unchanged_reingest_s"] = round(time.perf_counter() - start, 3)
    assert again.unchanged == result.documents and again.chunks == 0

    real = next((Path(p) for p in REAL_PDFS if Path(p).is_file()), None)
    data = real.read_bytes() if real else generated_pdf(stdlib_docstrings(), 40)
    name = real.name if real else "stdlib-docstrings.pdf"
    start = time.perf_counter()
    result = await knowledge.ingest_bytes("ingest", name, data)
    seconds = time.perf_counter() - start
    pages = await pool.fetchval(
        "SELECT (meta->>'pages')::int FROM documents WHERE path = $1", name
    )
    pdf = {
        "source": str(real) if real else "generated from stdlib docstrings",
        "bytes": len(data), "pages": pages, "chunks": result.chunks,
        "seconds": round(seconds, 2), "chunks_per_s": round(result.chunks / seconds, 1),
    }
    return {"repository": repository, "pdf": pdf}


class Corpus:
    """Synthetic chunks built from real sentence embeddings, silo by silo, reproducibly."""

    def __init__(self, texts: list[str], vectors: np.ndarray, silos: int) -> None:
        self.texts = texts
        self.base = vectors
        self.parts: list[list[np.ndarray]] = [[] for _ in range(silos)]
        self.rng = np.random.default_rng(11)

    def make(self, silo: int, n: int) -> tuple[np.ndarray, list[str]]:
        a = self.rng.integers(0, len(self.base), n)
        b = self.rng.integers(0, len(self.base), n)
        weight = self.rng.uniform(0.3, 0.9, (n, 1)).astype(np.float32)
        dim = self.base.shape[1]
        noise = self.rng.standard_normal((n, dim), dtype=np.float32) * (NOISE / np.sqrt(dim))
        v = self.base[a] + weight * self.base[b] + noise
        v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        self.parts[silo].append(v)
        return v, [f"{self.texts[i]} {self.texts[j]}" for i, j in zip(a, b)]

    def size(self, silo: int) -> int:
        return sum(len(p) for p in self.parts[silo])

    def vectors(self, silo: int) -> np.ndarray:
        return np.concatenate(self.parts[silo])


async def load(pool, corpus: Corpus, silos, source_ids: list[int], n: int) -> None:
    """Add n chunks over the silos by SILO_SHARES, COPY_BATCH rows per COPY."""
    for s, (silo, source_id) in enumerate(zip(silos, source_ids)):
        count = int(round(n * SILO_SHARES[s]))
        while count > 0:
            size = min(COPY_BATCH, count)
            first = corpus.size(s)  # row number in this silo's vectors, kept in location
            vectors, texts = corpus.make(s, size)
            documents = (size + CHUNKS_PER_DOCUMENT - 1) // CHUNKS_PER_DOCUMENT
            doc_ids = [r["id"] for r in await pool.fetch(
                "INSERT INTO documents (source_id, silo_id, path, kind, content_hash)"
                " SELECT $1, $2, $3 || g, 'text', 'bench' FROM generate_series(1, $4) g"
                " ORDER BY g RETURNING id",
                source_id, silo.id, f"rows-{first}/doc-", documents,
            )]
            records = (
                (doc_ids[i // CHUNKS_PER_DOCUMENT], silo.id, i % CHUNKS_PER_DOCUMENT, texts[i],
                 "bench", json.dumps({"i": first + i}), vectors[i])
                for i in range(size)
            )
            async with pool.acquire() as conn:
                await conn.copy_records_to_table("chunks", records=records, columns=CHUNK_COLUMNS)
            count -= size


async def chunk_ids_by_row(pool, silo_id: int, rows: int) -> np.ndarray:
    ids = np.zeros(rows, np.int64)
    for r in await pool.fetch(
        "SELECT id, (location->>'i')::int AS i FROM chunks WHERE silo_id = $1", silo_id
    ):
        ids[r["i"]] = r["id"]
    return ids


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(ms: list[float]) -> dict:
    return {"p50_ms": round(statistics.median(ms), 2), "p99_ms": round(percentile(ms, 0.99), 2)}


async def recall_without_iterative_scan(pool, silo, vectors, truth, ef: int) -> float:
    sql = _sql("nearest", silo.dim, False, 4)
    hits = []
    async with pool.acquire() as conn:
        for q, expected in zip(vectors, truth):
            async with conn.transaction():
                await conn.execute(
                    f"SET LOCAL hnsw.ef_search = {ef}; SET LOCAL hnsw.iterative_scan = off"
                )
                rows = await conn.fetch(sql, q, silo.id, 10)
            hits.append(len({r["id"] for r in rows} & expected) / 10)
    return float(np.mean(hits))


async def index_used(pool, silo, vector) -> str:
    """The index the planner picks for the vector channel in this silo."""
    sql = _sql("nearest", silo.dim, False, 4)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", vector, silo.id, 10)
    found = re.findall(r'"Index Name": "([a-z0-9_]+)"', plan)
    return found[0] if found else "sequential scan"


async def measure(knowledge, pool, corpus, silos, queries, query_vectors, size) -> dict:
    ids = [await chunk_ids_by_row(pool, s.id, corpus.size(i)) for i, s in enumerate(silos)]
    assignments = [i % len(silos) for i in range(len(queries))]
    truth = []
    for q, s in zip(query_vectors, assignments):
        scores = corpus.vectors(s) @ q
        truth.append({int(ids[s][i]) for i in np.argpartition(-scores, 10)[:10]})

    tokens = [knowledge.embedder.count_tokens(q) for q in queries]
    out: dict = {
        "chunks": size, "chunks_by_silo": [len(i) for i in ids],
        "query_tokens_p50": int(statistics.median(tokens)), "by_ef_search": {},
    }
    for ef in EF_SEARCH_TRIED:
        searcher = Searcher(pool, knowledge.embedder, knowledge.silos, ef_search=ef)
        for q, s in list(zip(query_vectors, assignments))[:20]:  # warm the caches
            await searcher.nearest(silos[s], q, 10)
        per_silo: list[list[float]] = [[] for _ in silos]
        ms = []
        for q, s, expected in zip(query_vectors, assignments, truth):
            start = time.perf_counter()
            found = await searcher.nearest(silos[s], q, 10)
            ms.append((time.perf_counter() - start) * 1000)
            per_silo[s].append(len({i for i, _ in found} & expected) / 10)
        out["by_ef_search"][ef] = {
            "recall_at_10": round(float(np.mean([r for rs in per_silo for r in rs])), 4),
            "recall_at_10_by_silo": [round(float(np.mean(r)), 4) for r in per_silo],
            "vector_search": summary(ms),
        }

    searcher = knowledge.searcher
    embed_ms = []
    for text in queries:
        start = time.perf_counter()
        await knowledge.embedder.embed([text])
        embed_ms.append((time.perf_counter() - start) * 1000)
    hybrid_ms, e2e_ms = [], []
    for text, q, s in zip(queries, query_vectors, assignments):
        start = time.perf_counter()
        await searcher.search_silo(silos[s], text, q, k=10)
        hybrid_ms.append((time.perf_counter() - start) * 1000)
    for text, s in zip(queries, assignments):
        start = time.perf_counter()
        await knowledge.query_knowledge(text, silos[s].project, k=10)
        e2e_ms.append((time.perf_counter() - start) * 1000)
    smallest = len(silos) - 1
    pick = [i for i, s in enumerate(assignments) if s == smallest]
    without = await recall_without_iterative_scan(
        pool, silos[smallest], [query_vectors[i] for i in pick], [truth[i] for i in pick],
        searcher.ef_search,
    )
    return out | {
        "ef_search": searcher.ef_search,
        "recall_at_10": out["by_ef_search"][searcher.ef_search]["recall_at_10"],
        "vector_search": out["by_ef_search"][searcher.ef_search]["vector_search"],
        "hybrid_search": summary(hybrid_ms),
        "query_embedding": summary(embed_ms),
        "query_knowledge_end_to_end": summary(e2e_ms),
        "index_used_by_silo": [await index_used(pool, s, query_vectors[0]) for s in silos],
        "smallest_silo_recall_at_10_without_iterative_scan": round(without, 4),
    }


async def rebuild_indexes(pool, definitions: list[str]) -> float:
    start = time.perf_counter()
    async with pool.acquire() as conn:
        await conn.execute("SET maintenance_work_mem = '2GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 1")
        for sql in definitions:
            await conn.execute(sql)
        await conn.execute("VACUUM ANALYZE chunks")
    return time.perf_counter() - start


async def bench_scale(knowledge, pool, embedder, sizes, n_queries, texts) -> list[dict]:
    base_texts, query_texts = texts[:BASE_SENTENCES], texts[BASE_SENTENCES:][:n_queries]
    base = await embedder.embed(base_texts)
    query_vectors = await embedder.embed(query_texts)
    silos, source_ids = [], []
    for s in range(len(SILO_SHARES)):
        name = f"silo{s}"
        await pool.execute("INSERT INTO projects (name, repo_path) VALUES ($1, $2)", name, "/")
        silo = await knowledge.silos.get(name)
        silos.append(silo)
        source_ids.append(await pool.fetchval(
            "INSERT INTO sources (silo_id, kind, uri) VALUES ($1, 'folder', '/bulk') RETURNING id",
            silo.id,
        ))
    indexes = dict(await pool.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks'"
        " AND indexname IN ('chunks_hnsw_384', 'chunks_fts', 'chunks_by_silo')"
    ))
    corpus = Corpus(base_texts, base, len(SILO_SHARES))
    results, loaded = [], 0
    for size in sizes:
        for name in indexes:
            await pool.execute(f"DROP INDEX IF EXISTS {name}")
        start = time.perf_counter()
        await load(pool, corpus, silos, source_ids, size - loaded)
        load_s = time.perf_counter() - start
        loaded = size
        index_s = await rebuild_indexes(pool, list(indexes.values()))
        result = await measure(knowledge, pool, corpus, silos, query_texts, query_vectors, size)
        results.append({"load_s": round(load_s, 1), "index_build_s": round(index_s, 1), **result})
    return results


async def main(sizes: list[int], n_queries: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="lugh-bench-"))
    server = EmbeddedPostgres(work / "pg")
    try:
        admin = await server.start()
        conn = await asyncpg.connect(admin)
        for setting, value in (("shared_buffers", "'2GB'"), ("fsync", "off"),
                               ("synchronous_commit", "off"), ("full_page_writes", "off"),
                               ("max_wal_size", "'4GB'")):
            await conn.execute(f"ALTER SYSTEM SET {setting} = {value}")
        await conn.close()
        await server.stop()  # shared_buffers takes a restart
        admin = await server.start()
        conn = await asyncpg.connect(admin)
        await conn.execute("CREATE DATABASE bench")
        await conn.close()
        dsn = server.dsn("bench")
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        versions = await conn.fetchrow(
            "SELECT current_setting('server_version') AS pg, current_setting('shared_buffers')"
            " AS shared_buffers, (SELECT extversion FROM pg_extension WHERE extname = 'vector')"
            " AS vector"
        )
        await conn.close()
        pool = await create_pool(dsn)
        embedder = LocalEmbedder()
        embedder.load()
        knowledge = KnowledgeService(pool, embedder)
        ingest = await bench_ingestion(knowledge, pool, work)
        scale = await bench_scale(
            knowledge, pool, embedder, sizes, n_queries, sentences(BASE_SENTENCES + n_queries)
        )
        await pool.close()
        return {
            "bench": "knowledge",
            "embedder": embedder.name,
            "postgres": f"PostgreSQL {versions['pg']}, pgvector {versions['vector']}, "
                        f"shared_buffers {versions['shared_buffers']}",
            "hnsw": {"m": 16, "ef_construction": 64, "iterative_scan": "relaxed_order"},
            "queries": n_queries,
            "ingest": ingest,
            "scale": scale,
        }
    finally:
        await server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000", help="chunk counts, comma-separated")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print(json.dumps(asyncio.run(main(sizes, args.queries))), flush=True)
