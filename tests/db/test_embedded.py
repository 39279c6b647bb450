import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

import asyncpg
import pytest

from lugh.db.database import DatabaseError, database
from lugh.db.embedded import EmbeddedPostgres


async def test_the_embedded_server_keeps_its_data_across_a_stop_and_a_start(tmp_path):
    pgdata = tmp_path / "pg"

    async with database(None, pgdata, "lugh_dev") as dsn:
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        await conn.close()
    stopped = not (pgdata / "postmaster.pid").exists()

    async with database(None, pgdata, "lugh_dev") as dsn:
        conn = await asyncpg.connect(dsn)
        kept = await conn.fetchval("SELECT x FROM kept")
        await conn.close()

    assert stopped
    assert kept == 42
    assert not (pgdata / "postmaster.pid").exists()


async def test_the_server_stops_only_when_the_last_holder_lets_go(tmp_path):
    first = EmbeddedPostgres(tmp_path / "pg")
    second = EmbeddedPostgres(tmp_path / "pg")
    await first.start()
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import asyncio, sys; from pathlib import Path; from lugh.db.embedded import EmbeddedPostgres\n"
        "async def main():\n"
        f"    s = EmbeddedPostgres(Path({str(tmp_path / 'pg')!r})); await s.start(); print('up', flush=True)\n"
        "    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline); await s.stop()\n"
        "asyncio.run(main())",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    assert await asyncio.wait_for(holder.stdout.readline(), timeout=30) == b"up\n"

    await first.stop()
    still_running_for_the_other_process = first.running
    holder.stdin.write(b"\n")
    await holder.stdin.drain()
    await asyncio.wait_for(holder.wait(), timeout=30)

    assert still_running_for_the_other_process
    assert not second.running


async def test_a_holder_killed_without_cleaning_up_does_not_keep_the_server_alive(tmp_path):
    server = EmbeddedPostgres(tmp_path / "pg")
    await server.start()
    holders = tmp_path / "pg" / ".handle_pids.json"
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    holders.write_text(json.dumps([dead.pid, *json.loads(holders.read_text())]))
    await server.stop()

    restarted = EmbeddedPostgres(tmp_path / "pg")
    await restarted.start()
    await restarted.stop()

    assert not restarted.running
    assert json.loads(holders.read_text()) == []


async def test_an_unreachable_database_url_is_one_clear_sentence(tmp_path):
    with pytest.raises(DatabaseError) as caught:
        async with database("postgresql://lugh:pw@127.0.0.1:1/lugh", tmp_path / "pg", "x"):
            pass

    message = str(caught.value)
    assert message.startswith("Cannot reach the database at postgresql://lugh@127.0.0.1:1/lugh (")
    assert message.endswith("check DATABASE_URL and that the server is running.")
    assert "pw" not in message
    assert not (tmp_path / "pg").exists()


async def test_a_database_without_pgvector_is_refused_with_a_clear_sentence(postgres, tmp_path):
    admin = await asyncpg.connect(postgres.admin_dsn)
    name = f"novector_{os.getpid()}"
    await admin.execute(f"CREATE DATABASE {name}")
    # A server where pgvector is not installed: point this database at an empty extension dir.
    nowhere = Path(tempfile.mkdtemp())
    (nowhere / "extension").mkdir()
    nowhere.chmod(0o755)
    await admin.execute(f"ALTER DATABASE {name} SET extension_control_path = '{nowhere}'")
    try:
        with pytest.raises(DatabaseError, match="has no pgvector extension; install pgvector"):
            async with database(postgres.dsn(name), tmp_path / "pg", "x"):
                pass
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()
