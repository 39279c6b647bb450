"""`lugh mcp`: the same server over stdin/stdout, for desktop clients that launch Lugh."""

from __future__ import annotations

import asyncio
import sys

from lugh.config import Settings, load_settings
from lugh.logs import configure_logging
from lugh.mcp.server import build_server
from lugh.services import Services

STDIO = "stdio"  # the caller in the audit trail: whoever launched the process


async def run_stdio(services: Services) -> None:
    """Serve MCP on stdin/stdout until the client closes them."""
    await build_server(services, local=STDIO).run_stdio_async()


async def serve_stdio(settings: Settings) -> None:
    """Open the database and services as `lugh run` does, then serve on stdio."""
    from lugh.app import open_services

    async with open_services(settings) as services:
        await run_stdio(services)


def main() -> None:
    """Entry point for a process launched by an MCP client; stdout carries only the protocol,
    so logs go to stderr."""
    settings = load_settings(None)
    configure_logging(settings.log_level, "json", settings.secret_values(), stream=sys.stderr)
    asyncio.run(serve_stdio(settings))
