"""`lugh mcp`: the stdio server launched as a subprocess answers initialize and tools/list."""

from __future__ import annotations

import os
import sys

from mcp import Client
from mcp.client.stdio import StdioServerParameters

LAUNCH = "from lugh.mcp.stdio import main; main()"


async def test_the_stdio_server_answers_initialize_and_lists_its_tools(database, tmp_path):
    environment = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
        "DATABASE_URL": database, "LUGH_DATA_DIR": str(tmp_path / "data"),
        "LUGH_LOG_LEVEL": "warning",
    }  # fmt: skip
    command = StdioServerParameters(
        command=sys.executable, args=["-c", LAUNCH], env=environment, cwd=str(tmp_path)
    )
    async with Client(command, mode="legacy", read_timeout_seconds=60) as client:
        info = client.server_info
        tools = (await client.list_tools()).tools

    assert info is not None and info.name == "lugh"
    assert {"spawn_agent", "assign_task", "query_knowledge", "get_task"} <= {t.name for t in tools}
