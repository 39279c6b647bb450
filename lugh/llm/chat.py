"""What Lugh asks of a chat model with tools: the ChatModel protocol, its reply, token usage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from lugh.errors import UserError

Message = dict[str, Any]  # {"role": "user" | "assistant", "content": str | [blocks]} as on the wire


@dataclass(frozen=True)
class Usage:
    """Tokens of one or more model calls. Input is split as the API bills it: uncached,
    written to the prompt cache, and read from it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self.values(), other.values())))

    def values(self) -> tuple[int, int, int, int]:
        return (
            self.input_tokens, self.output_tokens,
            self.cache_creation_input_tokens, self.cache_read_input_tokens,
        )  # fmt: skip

    @property
    def total(self) -> int:
        return sum(self.values())

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Usage:
        data = data or {}
        return cls(*(int(data.get(name) or 0) for name in cls.__dataclass_fields__))


@dataclass(frozen=True)
class ModelReply:
    id: str
    model: str
    content: list[dict[str, Any]]  # wire-format blocks, ready to go back as the assistant turn
    stop_reason: str | None
    usage: Usage = field(default_factory=Usage)

    @property
    def text(self) -> str:
        return "\n".join(b["text"] for b in self.content if b.get("type") == "text").strip()

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]


@dataclass(frozen=True)
class ChatRequest:
    model: str
    system: str
    tools: Sequence[Mapping[str, Any]]  # {"name", "description", "input_schema"}
    messages: Sequence[Message]
    max_tokens: int = 8192
    # {"type": "tool", "name": ...} forces that tool; None leaves the choice to the model.
    tool_choice: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Retrying:
    """A failed call about to be tried again, for the caller's log or audit trail."""

    attempt: int  # 1 for the first retry
    status: int | None  # the HTTP status, None for a connection failure or timeout
    delay_s: float
    reason: str


OnRetry = Callable[[Retrying], Awaitable[None] | None]


class LLMError(UserError):
    """The model could not be asked; `str()` says why in one sentence. `retryable`: the same
    request may well succeed later (overloaded, rate limited, unreachable)."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class ChatModel(Protocol):
    """One turn of a conversation with tools. Implementations retry what is worth retrying,
    mark the stable prefix for caching, and raise LLMError for the rest."""

    async def complete(
        self, request: ChatRequest, *, on_retry: OnRetry | None = None
    ) -> ModelReply: ...
