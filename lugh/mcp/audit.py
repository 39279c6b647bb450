"""Who is calling an MCP tool, whether they may, and the record of every call.

Each call is recorded in the caller's session (transport `mcp`) and, when it concerns a task,
as a `mcp_call` event of that task. Errors the caller can act on become tool errors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from lugh.errors import UserError
from lugh.logs import get_logger
from lugh.services import Services
from lugh.tasks import TaskError, TaskNotFound

log = get_logger("lugh.mcp")

READ_SCOPE = "lugh:read"
WRITE_SCOPE = "lugh:write"
ARGUMENT_CHARS = 200
READ_ONLY = (
    "This token is read-only: it can query Lugh but not spawn, assign, approve, reject, cancel "
    "or ingest; use the owner's token (LUGH_MCP_TOKEN) for that."
)
UNSTORABLE = (
    "The arguments contain characters Lugh cannot store (such as NUL or a lone surrogate); "
    "remove them and call again."
)
INTERNAL = "Lugh failed to do that because of an internal error (it is logged); try again later."


@dataclass(frozen=True)
class Caller:
    who: str  # the token's name over HTTP; the transport's name in process (stdio, local)
    can_write: bool
    session_key: str  # the sessions row: one per token and MCP session


@dataclass
class Call:
    """One tool call under way: what it created, and which task it concerns."""

    caller: Caller
    session_id: int
    task_id: int | None = None
    created: list[tuple[str, int | str]] = field(default_factory=list)

    def made(self, kind: str, ref: int | str) -> None:
        self.created.append((kind, ref))


def caller_of(ctx: Context, local: str) -> Caller:
    """The authenticated token of an HTTP request; in process (stdio, tests) the local owner."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None) or {}
    user = scope.get("user")
    if not isinstance(user, AuthenticatedUser):
        return Caller(local, True, local)
    token = user.access_token
    session = (ctx.headers or {}).get("mcp-session-id")
    key = f"{token.client_id}/{session}" if session else token.client_id
    return Caller(token.client_id, WRITE_SCOPE in token.scopes, key)


class Audit:
    """Opens the caller's session once, checks scopes, and records each call's outcome."""

    def __init__(self, services: Services, local: str) -> None:
        self.services = services
        self.local = local
        self._sessions: dict[str, int] = {}

    async def session_id(self, caller: Caller) -> int:
        found = self._sessions.get(caller.session_key)
        if found is None:
            session = await self.services.sessions.open("mcp", caller.session_key)
            found = self._sessions[caller.session_key] = session.id
        return found

    @asynccontextmanager
    async def call(
        self, ctx: Context, tool: str, arguments: dict[str, Any], *, writes: bool = False,
        task_id: int | None = None,
    ) -> AsyncIterator[Call]:
        caller = caller_of(ctx, self.local)
        call = Call(caller, await self.session_id(caller), task_id)
        error: str | None = None
        try:
            if writes and not caller.can_write:
                raise ToolError(READ_ONLY)
            yield call
        except ToolError as exc:
            error = str(exc)
            raise
        except (UserError, TaskError) as exc:
            error = str(exc)
            raise ToolError(error) from exc
        except (asyncpg.DataError, asyncpg.CharacterNotInRepertoireError, UnicodeError) as exc:
            error = UNSTORABLE
            raise ToolError(error) from exc
        except Exception as exc:
            log.exception("MCP tool failed", tool=tool, who=caller.who)
            error = INTERNAL
            raise ToolError(error) from exc
        finally:
            await self._record(call, tool, arguments, error)

    async def _record(
        self, call: Call, tool: str, arguments: dict[str, Any], error: str | None
    ) -> None:
        outcome = {"who": call.caller.who, "tool": tool, "ok": error is None, "error": error}
        shown = {k: _short(v) for k, v in arguments.items() if v is not None}
        sessions, events = self.services.sessions, self.services.events
        try:
            await sessions.record_asked(call.session_id, tool, _storable(json.dumps(
                {"arguments": shown, "result": "ok" if error is None else "error", "error": error},
                ensure_ascii=False, default=str,
            )))  # fmt: skip
            for kind, ref in call.created:
                await sessions.record_created(call.session_id, kind, ref)
            if call.task_id is not None and 0 < call.task_id < 2**31:
                clean = {k: _storable(v) if isinstance(v, str) else v for k, v in outcome.items()}
                await events.publish(call.task_id, "mcp_call", clean)
        except TaskNotFound:
            pass  # the task does not exist: the call's own error says so
        except Exception:
            log.exception("MCP call could not be recorded", tool=tool, who=call.caller.who)


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > ARGUMENT_CHARS:
        return value[: ARGUMENT_CHARS - 1] + "…"
    return value


def _storable(text: str) -> str:
    """Text Postgres accepts in jsonb: valid UTF-8, no NUL (escaped or not)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "").replace("\\u0000", "")
