"""The Embedder protocol and the factory that picks one by its config name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np


class EmbedderError(Exception):
    """An embedder cannot be built or run; `str()` is one sentence saying what to do."""


class Embedder(Protocol):
    """Turns texts into unit-length vectors; `name` and `dim` identify the vector space."""

    name: str
    dim: int
    max_tokens: int  # the model reads at most this many tokens of a text; chunk below it

    async def embed(self, texts: list[str]) -> np.ndarray:
        """float32 vectors of shape (len(texts), dim), L2-normalised, in the order given."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens of this model's `text` is, for sizing chunks."""
        ...


def _local(openai_api_key: str | None, openai_base_url: str | None) -> Embedder:
    from lugh.knowledge.embedders.local import LocalEmbedder

    return LocalEmbedder()


def _openai(openai_api_key: str | None, openai_base_url: str | None) -> Embedder:
    from lugh.knowledge.embedders.openai import OpenAIEmbedder

    if not openai_api_key:
        raise EmbedderError(
            "The openai embedder needs an API key: set OPENAI_API_KEY, or LUGH_EMBEDDER=local."
        )
    return OpenAIEmbedder(api_key=openai_api_key, base_url=openai_base_url)


EMBEDDERS: dict[str, Callable[[str | None, str | None], Embedder]] = {
    "local": _local,
    "openai": _openai,
}


def make_embedder(
    kind: str, *, openai_api_key: str | None = None, openai_base_url: str | None = None
) -> Embedder:
    """The embedder configured as `kind` (LUGH_EMBEDDER)."""
    try:
        factory = EMBEDDERS[kind]
    except KeyError:
        known = ", ".join(sorted(EMBEDDERS))
        raise EmbedderError(
            f"There is no embedder called {kind!r}: set LUGH_EMBEDDER to one of {known}."
        ) from None
    return factory(openai_api_key, openai_base_url)
