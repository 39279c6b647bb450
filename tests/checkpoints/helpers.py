"""A project with something of everything in it, and a fingerprint of a project's whole state
(rows, branches, worktree files) to compare before and after."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from pathlib import Path

import asyncpg

from lugh.checkpoints.snapshot import TABLES, _SNAPSHOT
from lugh.services import Services


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


async def fill_project(services: Services, name: str, *, chunks: int = 5, seed: int = 1) -> dict:
    """Agents, tasks (done, queued, running with a worktree holding uncommitted work), events,
    an approval, an agent run with its conversation, knowledge with embeddings, memories."""
    rng = random.Random(seed)
    project = await services.projects.get(name)
    agent = await services.agents.spawn(name, "builder", "engineer")
    pool = services.pool
    done = await services.tasks.enqueue(project.id, "write the readme", agent_id=agent.id)
    await pool.execute("UPDATE tasks SET status = 'done' WHERE id = $1", done.id)
    queued = await services.tasks.enqueue(
        project.id, "add tests", agent_id=agent.id, depends_on=[done.id]
    )
    running = await services.tasks.enqueue(project.id, "fix the bug", agent_id=agent.id, priority=9)
    claimed = await services.tasks.claim("worker-1", 600)
    assert claimed is not None and claimed.id == running.id
    wt = await services.worktrees.create(project, running.id, running.title)
    (wt.path / "README.md").write_text("# changed by the agent\n")
    (wt.path / "new_file.py").write_text("print('new')\n")
    run_id = await pool.fetchval(
        "INSERT INTO agent_runs (task_id, mode, model, system, tools, steps) "
        "VALUES ($1, 'work', 'claude', 'be good', ARRAY['read_file'], 2) RETURNING id",
        running.id,
    )
    for seq, role in enumerate(("user", "assistant")):
        await pool.execute(
            "INSERT INTO agent_messages (run_id, seq, role, content) VALUES ($1, $2, $3, $4)",
            run_id, seq, role, json.dumps([{"type": "text", "text": f"{role} {seq}"}]),
        )  # fmt: skip
    await pool.execute(
        "INSERT INTO approvals (task_id, kind, payload) VALUES ($1, 'review', '{\"a\": 1}')",
        done.id,
    )
    await pool.execute(
        "INSERT INTO task_events (task_id, kind, data) VALUES ($1, 'note', '{\"x\": 1}')", done.id
    )
    silo = await pool.fetchval(
        "INSERT INTO silos (project_id, embedder, dim) VALUES ($1, 'test', 4) RETURNING id",
        project.id,
    )
    source = await pool.fetchval(
        "INSERT INTO sources (silo_id, kind, uri) VALUES ($1, 'file', 'docs') RETURNING id", silo
    )
    doc = await pool.fetchval(
        "INSERT INTO documents (source_id, silo_id, path, kind, content_hash) "
        "VALUES ($1, $2, 'docs/guide.md', 'markdown', 'h') RETURNING id",
        source, silo,
    )  # fmt: skip
    for i in range(chunks):
        vector = [rng.uniform(-1, 1) for _ in range(4)]
        await pool.execute(
            "INSERT INTO chunks (document_id, silo_id, ordinal, content, content_hash, embedding) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            doc, silo, i, f"chunk {i} about the guide", f"c{i}", vector,
        )  # fmt: skip
    await pool.execute(
        "INSERT INTO memories (scope, project_id, kind, content, embedding) "
        "VALUES ('project', $1, 'semantic', 'tests run with make test', $2)",
        project.id, [0.1, 0.2, 0.3, 0.4],
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO memories (scope, agent_id, kind, content) "
        "VALUES ('agent', $1, 'procedural', 'x')",
        agent.id,
    )
    git(project.repo_path, "branch", f"feature-{name}")
    return {"project": project, "agent": agent, "running": running.id, "queued": queued.id,
            "done": done.id, "worktree": wt.path}  # fmt: skip


async def fingerprint(pool: asyncpg.Pool | asyncpg.Connection, project_id: int, repo: Path,
                      worktrees: Path) -> dict[str, str]:  # fmt: skip
    """sha256 of every captured table's rows of the project, of its branches and tags, and of
    the files of its worktrees."""
    print_ = {}
    for table in TABLES:
        query = getattr(_SNAPSHOT, table).rstrip(";").replace("{columns}", "t.*")
        rows = await pool.fetch(f"SELECT x::text AS r FROM ({query}) x", project_id)
        print_[table] = hashlib.sha256("\n".join(r["r"] for r in rows).encode()).hexdigest()
    print_["refs"] = hashlib.sha256(
        git(repo, "for-each-ref", "--format=%(refname) %(objectname)").encode()
    ).hexdigest()
    files = hashlib.sha256()
    if worktrees.is_dir():
        for path in sorted(worktrees.rglob("*")):
            if path.is_file() and ".git" not in path.relative_to(worktrees).parts[1:2]:
                files.update(str(path.relative_to(worktrees)).encode() + b"\0" + path.read_bytes())
    print_["worktrees"] = files.hexdigest()
    return print_
