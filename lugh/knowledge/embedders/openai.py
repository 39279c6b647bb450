"""OpenAI's text-embedding-3-small (1536 dims) through the official SDK."""

from __future__ import annotations

import math

import numpy as np
from openai import APIConnectionError, APIStatusError, AsyncOpenAI
from openai.types import Embedding

from lugh.knowledge.embedders.base import EmbedderError

MODEL = "text-embedding-3-small"
DIM = 1536
MAX_TOKENS = 8191
# The API takes up to 2,048 inputs per request; smaller requests fail and retry more cheaply.
INPUTS_PER_REQUEST = 256
# 429s and 5xx are retried by the SDK, with backoff, honouring Retry-After.
MAX_RETRIES = 5
# OpenAI's rule of thumb for English is ~4 characters a token; counting UTF-8 bytes instead
# keeps the estimate from falling far short on non-Latin scripts.
BYTES_PER_TOKEN = 4


class OpenAIEmbedder:
    """text-embedding-3-small over the network; `base_url` points it at any compatible API."""

    name = f"openai/{MODEL}"
    dim = DIM
    max_tokens = MAX_TOKENS

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        inputs_per_request: int = INPUTS_PER_REQUEST,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        self._client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=max_retries)
        self._inputs_per_request = inputs_per_request

    async def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), np.float32)
        for start in range(0, len(texts), self._inputs_per_request):
            batch = texts[start : start + self._inputs_per_request]
            for item in await self._request(batch):
                vectors[start + item.index] = item.embedding
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    async def _request(self, batch: list[str]) -> list[Embedding]:
        try:
            # The API rejects empty strings; a lone space stands in for one.
            response = await self._client.embeddings.create(
                model=MODEL, input=[text or " " for text in batch]
            )
        except APIStatusError as e:
            raise EmbedderError(
                f"OpenAI's embeddings API answered {e.status_code} ({e.message}): check "
                "OPENAI_API_KEY and OPENAI_BASE_URL, or try again later."
            ) from e
        except APIConnectionError as e:
            raise EmbedderError(
                f"OpenAI's embeddings API cannot be reached at {self._client.base_url}: check "
                "the network and OPENAI_BASE_URL."
            ) from e
        if sorted(item.index for item in response.data) != list(range(len(batch))):
            raise EmbedderError(
                f"OpenAI's embeddings API returned {len(response.data)} vectors for "
                f"{len(batch)} texts: try again, or use LUGH_EMBEDDER=local."
            )
        if any(len(item.embedding) != DIM for item in response.data):
            raise EmbedderError(
                f"The embeddings API at {self._client.base_url} did not return {DIM}-dimensional "
                f"vectors for {MODEL}: check OPENAI_BASE_URL."
            )
        return response.data

    def count_tokens(self, text: str) -> int:
        """An estimate: the model's tokenizer (cl100k_base) does not ship with Lugh."""
        return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)

    async def aclose(self) -> None:
        await self._client.close()
