"""A fake Anthropic Messages API speaking the real wire format, for the real `anthropic` SDK.

Conversations are scripted by position: the reply to a request is the script's turn number N,
where N is how many assistant turns the request already holds. A repeated request (a retry, a
run resumed after a crash) therefore gets the same answer again, and `requests_at(N)` says how
often each turn was asked for. Several scripts can run at once, each chosen by a key that must
appear in the request's first user message.

Requests are validated the way the real API does it (roles alternate, every tool_use is
answered by a tool_result right after it and nothing else is, at most four cache breakpoints,
…), so a client bug is a 400 here too. Failures (429, 529, 500) and delays are injected per turn.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeServer

API_KEY = "sk-ant-test-fake"
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
    429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
}  # fmt: skip
_ids = itertools.count(1)


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(name: str, input: Any = None, id: str | None = None) -> dict[str, Any]:
    """A tool_use block; `input` may be anything (malformed on purpose), `{}` when None."""
    return {
        "type": "tool_use", "id": id or f"toolu_{next(_ids):08d}", "name": name,
        "input": {} if input is None else input,
    }  # fmt: skip


@dataclass
class Turn:
    """One scripted assistant reply. The stop reason follows from the blocks unless given;
    `usage` overrides the counted tokens field by field."""

    content: list[dict[str, Any]]
    stop_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


def turn(*blocks: dict[str, Any] | str, stop_reason: str | None = None, **usage: int) -> Turn:
    content = [text(b) if isinstance(b, str) else b for b in blocks]
    return Turn(content, stop_reason, usage)


@dataclass
class Injection:
    status: int | None  # None: no failure, only the delay
    delay_s: float
    retry_after_s: float | None
    times: int


@dataclass
class Script:
    turns: list[Turn]
    injections: dict[int, list[Injection]] = field(default_factory=lambda: defaultdict(list))
    asked: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    arrived: dict[int, threading.Event] = field(default_factory=dict)


class FakeAnthropic(FakeServer):
    """The Messages API on a loopback port; the SDK takes `base_url` and `API_KEY`."""

    def __init__(self) -> None:
        self._scripts: dict[str, Script] = {}
        self._state = threading.Lock()
        self._closing = threading.Event()
        self._cache: set[str] = set()
        self.bodies: list[dict[str, Any]] = []  # every /v1/messages body, failed ones too
        super().__init__([Route("/v1/messages", self._messages, methods=["POST"])])

    @property
    def base_url(self) -> str:
        return self.url

    def stop(self) -> None:
        self._closing.set()  # held requests end now
        super().stop()

    def script(self, *turns: Turn, key: str = "") -> Script:
        """The conversation for requests whose first user message contains `key`."""
        with self._state:
            made = self._scripts[key] = Script(list(turns))
        return made

    def fail(
        self, at: int, status: int = 529, *, times: int = 1, retry_after_s: float | None = 0.01,
        key: str = "",
    ) -> None:
        """Answer the next `times` requests for turn `at` with `status`."""
        with self._state:
            self._scripts[key].injections[at].append(Injection(status, 0, retry_after_s, times))

    def delay(self, at: int, seconds: float, *, times: int = 1, key: str = "") -> None:
        """Hold the next `times` requests for turn `at` for `seconds` before answering."""
        with self._state:
            self._scripts[key].injections[at].append(Injection(None, seconds, None, times))

    def arrived(self, at: int, key: str = "") -> threading.Event:
        """Set once a request for turn `at` has come in."""
        with self._state:
            return self._scripts[key].arrived.setdefault(at, threading.Event())

    def requests_at(self, at: int, key: str = "") -> int:
        with self._state:
            return self._scripts[key].asked[at]

    # The endpoint.

    async def _messages(self, request: Request) -> Response:
        # The 2.x SDK sends the key as a bearer token; older clients used x-api-key.
        keys = {request.headers.get("x-api-key"), request.headers.get("authorization")}
        if not keys & {API_KEY, f"Bearer {API_KEY}"}:
            return _error(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "anthropic-version: header is required")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "The request body is not valid JSON.")
        with self._state:
            self.bodies.append(body)
        problem = validate(body)
        if problem:
            return _error(400, problem)
        script = self._script_for(body)
        if script is None:
            return _error(400, "fake: no script matches this conversation")
        at = sum(1 for m in body["messages"] if m["role"] == "assistant")
        with self._state:
            script.asked[at] += 1
            script.arrived.setdefault(at, threading.Event()).set()
            injection = _take(script.injections[at])
        if injection is not None:
            await self._hold(injection.delay_s)
            if injection.status is not None:
                return _error(injection.status, "Overloaded" if injection.status == 529
                              else "injected failure", injection.retry_after_s)  # fmt: skip
        if at >= len(script.turns):
            return _error(400, f"fake: the script has no turn {at}")
        return JSONResponse(self._reply(body, script.turns[at]))

    def _script_for(self, body: dict[str, Any]) -> Script | None:
        first = json.dumps(body["messages"][0]["content"])
        with self._state:
            keyed = [(k, s) for k, s in self._scripts.items() if k and k in first]
            return keyed[0][1] if keyed else self._scripts.get("")

    async def _hold(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while loop.time() < until and not self._closing.is_set():
            await asyncio.sleep(min(0.02, max(0.0, until - loop.time())))

    def _reply(self, body: dict[str, Any], scripted: Turn) -> dict[str, Any]:
        created, read, fresh = self._cache_tokens(body)
        usage = {
            "input_tokens": fresh, "output_tokens": _tokens(scripted.content),
            "cache_creation_input_tokens": created, "cache_read_input_tokens": read,
        }  # fmt: skip
        usage.update(scripted.usage)
        has_tool = any(b.get("type") == "tool_use" for b in scripted.content)
        return {
            "id": f"msg_{next(_ids):012d}", "type": "message", "role": "assistant",
            "model": body["model"], "content": scripted.content,
            "stop_reason": scripted.stop_reason or ("tool_use" if has_tool else "end_turn"),
            "stop_sequence": None, "usage": usage,
        }  # fmt: skip

    def _cache_tokens(self, body: dict[str, Any]) -> tuple[int, int, int]:
        """(cache written, cache read, uncached) input tokens: the prefix up to each
        breakpoint is cached once written, as the real API does within its TTL."""
        prefix: list[Any] = []
        cached_upto, created, read = 0, 0, 0
        blocks = _prefix_blocks(body)
        for n, block in enumerate(blocks, 1):
            prefix.append(block)
            if isinstance(block, dict) and block.get("cache_control"):
                digest = hashlib.sha256(json.dumps(prefix, sort_keys=True).encode()).hexdigest()
                size = _tokens(blocks[cached_upto:n])
                with self._state:
                    hit = digest in self._cache
                    self._cache.add(digest)
                if hit:
                    read += size
                else:
                    created += size
                cached_upto = n
        return created, read, max(1, _tokens(blocks[cached_upto:]))


def _prefix_blocks(body: dict[str, Any]) -> list[Any]:
    """Tools, then system, then messages, block by block: the order the cache sees them."""
    system = body.get("system") or []
    blocks: list[Any] = list(body.get("tools") or [])
    blocks += [text(system)] if isinstance(system, str) else list(system)
    for message in body["messages"]:
        content = message["content"]
        blocks += [text(content)] if isinstance(content, str) else list(content)
    return blocks


def _tokens(value: Any) -> int:
    return max(1, len(json.dumps(value)) // 4)


def _take(injections: list[Injection]) -> Injection | None:
    if not injections:
        return None
    first = injections[0]
    first.times -= 1
    if first.times <= 0:
        injections.pop(0)
    return first


def _error(status: int, message: str, retry_after_s: float | None = None) -> Response:
    kind = _ERROR_TYPES.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": message},
            "request_id": f"req_{next(_ids):012d}"}  # fmt: skip
    response = JSONResponse(body, status_code=status)
    if retry_after_s is not None:
        response.headers["retry-after"] = f"{retry_after_s:g}"
    return response


def validate(body: dict[str, Any]) -> str | None:
    """What the real API would refuse in this request body, as its error message; None if OK."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required (a positive integer)"
    tools = body.get("tools", [])
    names = [t.get("name") for t in tools]
    if len(set(names)) != len(names):
        return "tools: Tool names must be unique."
    for t in tools:
        if not isinstance(t.get("name"), str) or not _TOOL_NAME.fullmatch(t["name"]):
            return f"tools: name {t.get('name')!r} should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        schema = t.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{t['name']}.input_schema.type: Input should be 'object'"
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
            return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
        if choice["type"] in ("any", "tool") and not tools:
            return "tool_choice: tools must be given when tool_choice is any or tool"
        if choice["type"] == "tool" and choice.get("name") not in names:
            return f"tool_choice.name: no tool named {choice.get('name')!r} in tools"
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not all(isinstance(b, dict) and b.get("type") == "text" for b in system):
            return "system: only text blocks are allowed"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return "messages: the first message must use the user role"
    pending: set[str] = set()
    blocks = _prefix_blocks(body)
    breakpoints = sum(1 for b in blocks if isinstance(b, dict) and b.get("cache_control"))
    if breakpoints > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {breakpoints}."
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if i and role == messages[i - 1].get("role"):
            return f"messages.{i}: roles must alternate between user and assistant"
        blocks = [text(content)] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            return f"messages.{i}: all messages must have non-empty content"
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if pending:
            if role != "user" or set(results) != pending:
                missing = ", ".join(sorted(pending - set(results)))
                return (f"messages.{i}: tool_use ids were found without tool_result blocks "
                        f"immediately after: {missing}")  # fmt: skip
            leading = [b.get("type") for b in blocks[: len(results)]]
            if leading != ["tool_result"] * len(results):
                return f"messages.{i}: tool_result blocks must come first in the content"
        elif results:
            return f"messages.{i}: unexpected tool_use_id found in tool_result blocks: {results[0]}"
        pending = set()
        for block in blocks:
            kind = block.get("type")
            if kind == "text" and not isinstance(block.get("text"), str):
                return f"messages.{i}: text blocks need text"
            if kind == "text" and not block["text"] and role == "user":
                return f"messages.{i}: text content blocks must be non-empty"
            if kind == "tool_use":
                if role != "assistant":
                    return f"messages.{i}: tool_use blocks are only for the assistant"
                pending.add(block.get("id"))
            if kind == "image":
                problem = _image_problem(block)
                if problem:
                    return f"messages.{i}: {problem}"
            if kind == "tool_result":
                inner = block.get("content", "")
                if not isinstance(inner, (str, list)):
                    return f"messages.{i}: tool_result content must be a string or blocks"
            if kind not in ("text", "tool_use", "tool_result", "image", "document", "thinking"):
                return f"messages.{i}: unknown content block type {kind!r}"
    if pending:
        return "the conversation ends with tool_use blocks that have no tool_result"
    return None


_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_IMAGE_BYTES = 5 * 1024 * 1024


def _image_problem(block: dict[str, Any]) -> str | None:
    """What the real API refuses in an image block: a missing source, a media type it does not
    read, data that is not base64, or more than 5 MB once decoded."""
    source = block.get("source")
    if not isinstance(source, dict) or source.get("type") not in ("base64", "url"):
        return "image.source: Input should be a base64 or url source"
    if source["type"] == "url":
        return None
    if source.get("media_type") not in _IMAGE_TYPES:
        return f"image.source.media_type: Input should be one of {', '.join(_IMAGE_TYPES)}"
    try:
        data = base64.b64decode(source.get("data", ""), validate=True)
    except ValueError:
        return "image.source.data: The image data is not valid base64"
    if not data:
        return "image.source.data: The image is empty"
    if len(data) > MAX_IMAGE_BYTES:
        return "image exceeds 5 MB maximum"
    return None
