"""Thin wrappers over the language model APIs Lugh uses, behind small protocols."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lugh.llm.chat import (
    ChatModel,
    ChatRequest,
    LLMError,
    Message,
    ModelReply,
    OnRetry,
    Retrying,
    Usage,
)
from lugh.llm.prices import PRICES, Price, estimate_cost, price_of

if TYPE_CHECKING:
    from lugh.llm.claude import AnthropicChat, RetryPolicy


def __getattr__(name: str) -> Any:
    """The Anthropic client only when asked for: importing it takes 1.3 s, and most commands
    (`lugh doctor`, `lugh replay`, the health check) never talk to a model."""
    if name in ("AnthropicChat", "RetryPolicy"):
        from lugh.llm import claude

        return getattr(claude, name)
    raise AttributeError(f"module 'lugh.llm' has no attribute {name!r}")

__all__ = [
    "PRICES",
    "AnthropicChat",
    "ChatModel",
    "ChatRequest",
    "LLMError",
    "Message",
    "ModelReply",
    "OnRetry",
    "Price",
    "Retrying",
    "RetryPolicy",
    "Usage",
    "estimate_cost",
    "price_of",
]
