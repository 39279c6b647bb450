"""Thin wrappers over the language model APIs Lugh uses, behind small protocols."""

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
from lugh.llm.claude import AnthropicChat, RetryPolicy
from lugh.llm.prices import PRICES, Price, estimate_cost, price_of

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
