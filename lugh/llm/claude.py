"""ChatModel over the Anthropic Messages API (`anthropic.AsyncAnthropic`).

Retries are Lugh's own rather than the SDK's, so that each one can be recorded, a Retry-After
is honoured only up to a cap (a server asking for an hour would otherwise park a run silently),
and the caller's asyncio cancellation or deadline cuts a backoff short like any other await.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anthropic

from lugh.llm.chat import ChatRequest, LLMError, ModelReply, OnRetry, Retrying, Usage
from lugh.logs import get_logger

log = get_logger("lugh.llm.claude")

CACHE = {"type": "ephemeral"}
RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx, 529 "overloaded" among them


@dataclass(frozen=True)
class RetryPolicy:
    """Up to `retries` more tries after a failure worth retrying; the n-th waits the server's
    Retry-After (at most `max_retry_after_s`), else base·2^(n-1) capped at `max_s`, jittered
    down by up to half so that many runs hitting the same limit do not come back together."""

    retries: int = 5
    base_s: float = 1.0
    max_s: float = 30.0
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_after_s)
        backoff = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        return backoff * random.uniform(0.5, 1.0)


class AnthropicChat:
    """Claude through the official SDK; `base_url` points it at any compatible server."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = 300.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(
        self, request: ChatRequest, *, on_retry: OnRetry | None = None
    ) -> ModelReply:
        """One model turn; failures worth retrying are retried, the rest raise LLMError."""
        body = request_body(request)
        attempt = 0
        while True:
            try:
                message = await self._client.messages.create(**body)
            except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
                attempt += 1
                error = _llm_error(exc)
                if not error.retryable or attempt > self.retry.retries:
                    if error.retryable:
                        error = LLMError(
                            f"{error} It still failed after {attempt} tries; try again later.",
                            retryable=True, status=error.status,
                        )  # fmt: skip
                    raise error from exc
                delay = self.retry.delay(attempt, _retry_after(exc))
                notice = Retrying(attempt, error.status, delay, str(error))
                log.info("model call failed; retrying", status=error.status, in_s=round(delay, 2))
                if on_retry is not None:
                    outcome = on_retry(notice)
                    if inspect.isawaitable(outcome):
                        await outcome
                await asyncio.sleep(delay)
                continue
            return _reply(message)


def request_body(request: ChatRequest) -> dict[str, Any]:
    """The Messages API request, with cache breakpoints on the stable prefix (the tools and the
    system prompt) and on the newest message, so each step reads the previous steps from the
    cache. Three breakpoints; the API allows four."""
    tools = [dict(t) for t in request.tools]
    if tools:
        tools[-1]["cache_control"] = CACHE
    messages = [dict(m) for m in request.messages]
    if messages:
        last = messages[-1]
        content = last["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        if blocks:
            blocks[-1] = {**blocks[-1], "cache_control": CACHE}
            last["content"] = blocks
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": messages,
        "system": [{"type": "text", "text": request.system, "cache_control": CACHE}],
    }
    if tools:
        body["tools"] = tools
    if request.tool_choice is not None:
        body["tool_choice"] = dict(request.tool_choice)
    return body


def _reply(message: Any) -> ModelReply:
    content = []
    for block in message.content:
        if block.type == "text":
            content.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            content.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
        else:
            content.append(block.model_dump(mode="json", exclude_none=True))
    u = message.usage
    usage = Usage(
        u.input_tokens or 0, u.output_tokens or 0,
        u.cache_creation_input_tokens or 0, u.cache_read_input_tokens or 0,
    )  # fmt: skip
    return ModelReply(message.id, message.model, content, message.stop_reason, usage)


def _llm_error(exc: Exception) -> LLMError:
    if isinstance(exc, anthropic.APITimeoutError):
        return LLMError("The Anthropic API did not answer in time.", retryable=True)
    if isinstance(exc, anthropic.APIConnectionError):
        return LLMError("The Anthropic API could not be reached.", retryable=True)
    assert isinstance(exc, anthropic.APIStatusError)
    status = exc.status_code
    detail = _message(exc.body) or exc.message
    if status == 401:
        return LLMError(
            "The Anthropic API refused the API key (401); set a valid ANTHROPIC_API_KEY.",
            retryable=False, status=status,
        )  # fmt: skip
    if status == 429:
        return LLMError("The Anthropic API is rate limiting Lugh (429).", retryable=True,
                        status=status)  # fmt: skip
    if status == 529:
        return LLMError("The Anthropic API is overloaded (529).", retryable=True, status=status)
    retryable = status in RETRY_STATUSES or status >= 500
    return LLMError(
        f"The Anthropic API answered {status}: {detail[:300]}.", retryable=retryable, status=status
    )


def _message(body: object) -> str:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return error["message"].rstrip(".")
    return ""


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = response.headers.get(name)
        try:
            return float(value) * scale
        except (TypeError, ValueError):
            continue
    return None
