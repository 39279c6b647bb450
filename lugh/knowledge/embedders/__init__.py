"""Embedders: text to vectors, locally with numpy or through OpenAI, chosen by LUGH_EMBEDDER."""

from lugh.knowledge.embedders.base import Embedder, EmbedderError, make_embedder

__all__ = ["Embedder", "EmbedderError", "make_embedder"]
