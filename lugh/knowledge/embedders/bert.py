"""A BERT encoder's forward pass in float32 numpy, for inference only (no torch)."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

# Elementwise work runs over blocks this size so its many passes stay in the CPU cache.
_BLOCK = 1 << 15
# Floats of attention scores computed at once by one thread: a few sequences' worth.
_SCORES_BLOCK = 1 << 20


@dataclass(frozen=True)
class BertConfig:
    hidden_size: int
    num_heads: int
    num_layers: int
    layer_norm_eps: float

    @classmethod
    def from_json(cls, config: dict[str, Any]) -> BertConfig:
        if config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"unsupported activation {config['hidden_act']!r}")
        return cls(
            hidden_size=config["hidden_size"],
            num_heads=config["num_attention_heads"],
            num_layers=config["num_hidden_layers"],
            layer_norm_eps=config["layer_norm_eps"],
        )


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3 · hidden): query, key and value in one matmul
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1: tuple[np.ndarray, np.ndarray]
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]


class BertEncoder:
    """Token ids and attention mask in, last hidden states out."""

    def __init__(self, config: BertConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        w = {k.removeprefix("bert."): v.astype(np.float32, copy=False) for k, v in weights.items()}
        self._word = w["embeddings.word_embeddings.weight"]
        self._position = w["embeddings.position_embeddings.weight"]
        self._token_type = w["embeddings.token_type_embeddings.weight"][0]
        self._ln0 = _norm(w, "embeddings.LayerNorm")
        # Scaling the query projection once here saves scaling every score matrix.
        scale = np.float32(1 / math.sqrt(config.hidden_size // config.num_heads))
        self._layers = []
        for i in range(config.num_layers):
            p = f"encoder.layer.{i}."
            q, k, v = (p + f"attention.self.{name}." for name in ("query", "key", "value"))
            self._layers.append(
                _Layer(
                    qkv_w=_linear(np.concatenate([w[q + "weight"] * scale, w[k + "weight"],
                                                  w[v + "weight"]])),
                    qkv_b=np.concatenate([w[q + "bias"] * scale, w[k + "bias"], w[v + "bias"]]),
                    out_w=_linear(w[p + "attention.output.dense.weight"]),
                    out_b=w[p + "attention.output.dense.bias"],
                    ln1=_norm(w, p + "attention.output.LayerNorm"),
                    up_w=_linear(w[p + "intermediate.dense.weight"]),
                    up_b=w[p + "intermediate.dense.bias"],
                    down_w=_linear(w[p + "output.dense.weight"]),
                    down_b=w[p + "output.dense.bias"],
                    ln2=_norm(w, p + "output.LayerNorm"),
                )
            )

    def __call__(
        self, ids: np.ndarray, mask: np.ndarray, pool: Executor | None = None, threads: int = 1
    ) -> np.ndarray:
        """`ids` and `mask` are (batch, length); returns (batch, length, hidden) float32.

        With a `pool` of `threads`, attention and the elementwise work are shared among them
        (numpy releases the GIL there); the large matmuls stay on the calling thread's BLAS.
        """
        batch, length = ids.shape
        run = _Runner(pool, threads if pool is not None else 1)
        x = run.buffer("x", (batch * length, self.config.hidden_size))
        np.take(self._word, ids.reshape(-1), axis=0, out=x)
        x.reshape(batch, length, -1)[:] += self._position[:length] + self._token_type
        run.split(len(x), lambda rows, _: self._layer_norm(x[rows], self._ln0))
        # Padding keys get a large negative score so softmax gives them no weight.
        key_bias = np.where(mask, np.float32(0), np.float32(-1e9))[:, None, None, :]
        padded = ~mask.all(axis=1)
        for layer in self._layers:
            self._layer(x, layer, key_bias, padded, run)
        return x.reshape(batch, length, -1)

    def _layer(
        self, x: np.ndarray, layer: _Layer, key_bias: np.ndarray, padded: np.ndarray, run: _Runner
    ) -> None:
        """One encoder layer, updating `x` (batch · length, hidden) in place."""
        batch, _, _, length = key_bias.shape
        rows, hidden = x.shape
        heads = self.config.num_heads
        qkv = np.matmul(x, layer.qkv_w, out=run.buffer("qkv", (rows, 3 * hidden)))
        qkv_heads = qkv.reshape(batch, length, 3, heads, hidden // heads)
        context = run.buffer("context", (rows, hidden))
        context_heads = context.reshape(batch, length, heads, -1).transpose(0, 2, 1, 3)
        group = max(1, _SCORES_BLOCK // (heads * length * length))

        def attend(sequences: slice, part: int) -> None:
            qkv[sequences.start * length : sequences.stop * length] += layer.qkv_b
            for lo in range(sequences.start, sequences.stop, group):
                hi = min(lo + group, sequences.stop)
                scores = run.buffer(f"scores{part}", (hi - lo, heads, length, length))
                np.matmul(
                    qkv_heads[lo:hi, :, 0].transpose(0, 2, 1, 3),
                    qkv_heads[lo:hi, :, 1].transpose(0, 2, 3, 1),
                    out=scores,
                )
                if padded[lo:hi].any():
                    scores += key_bias[lo:hi]
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                out = context_heads[lo:hi]
                np.matmul(scores, qkv_heads[lo:hi, :, 2].transpose(0, 2, 1, 3), out=out)
                # Dividing the (length × head_dim) context beats dividing the (length²) weights.
                out /= scores.sum(axis=-1, keepdims=True)

        run.split(batch, attend)
        attended = np.matmul(context, layer.out_w, out=run.buffer("attended", (rows, hidden)))

        def add_and_norm_attended(r: slice, _: int) -> None:
            x[r] += attended[r]
            x[r] += layer.out_b
            self._layer_norm(x[r], layer.ln1)

        run.split(rows, add_and_norm_attended)
        inner = np.matmul(x, layer.up_w, out=run.buffer("inner", (rows, layer.up_w.shape[1])))

        def activate(r: slice, _: int) -> None:
            inner[r] += layer.up_b
            gelu_(inner[r])

        run.split(rows, activate)
        out = np.matmul(inner, layer.down_w, out=attended)

        def add_and_norm_output(r: slice, _: int) -> None:
            x[r] += out[r]
            x[r] += layer.down_b
            self._layer_norm(x[r], layer.ln2)

        run.split(rows, add_and_norm_output)

    def _layer_norm(self, x: np.ndarray, params: tuple[np.ndarray, np.ndarray]) -> None:
        """LayerNorm over the last axis of a 2-D array, in place."""
        weight, bias = params
        x -= x.mean(axis=-1, keepdims=True)
        variance = np.einsum("ij,ij->i", x, x)[:, None] / np.float32(x.shape[-1])
        variance += np.float32(self.config.layer_norm_eps)
        x *= 1 / np.sqrt(variance)
        x *= weight
        x += bias


class _Runner:
    """Shares row-wise work among a pool's threads, and keeps the forward pass's scratch arrays."""

    def __init__(self, pool: Executor | None, parts: int) -> None:
        self._pool = pool
        self._parts = parts
        self._arrays: dict[str, np.ndarray] = {}

    def split(self, count: int, work: Callable[[slice, int], None]) -> None:
        """Run `work(rows, part)` over `count` rows cut into one contiguous part per thread."""
        parts = min(self._parts, count)
        if parts <= 1 or self._pool is None:
            work(slice(0, count), 0)
            return
        bounds = [count * i // parts for i in range(parts + 1)]
        futures = [
            self._pool.submit(work, slice(bounds[i], bounds[i + 1]), i) for i in range(parts)
        ]
        for future in futures:
            future.result()

    def buffer(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A scratch array reused across layers: a fresh large one costs a page fault a page."""
        size = math.prod(shape)
        array = self._arrays.get(name)
        if array is None or array.size < size:
            array = self._arrays[name] = np.empty(size, np.float32)
        return array[:size].reshape(shape)


def _linear(weight: np.ndarray) -> np.ndarray:
    """A (out, in) torch Linear weight as a contiguous (in, out) matrix for `x @ w`."""
    return np.ascontiguousarray(weight.T)


def _norm(w: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    return w[prefix + ".weight"], w[prefix + ".bias"]


# Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), rewritten for GELU(x) = x·Φ(x):
# for a = |x|, Φ(-a) = q(a) = ½·poly(t)·exp(-a²/2) with t = 1 / (1 + p·a/√2), so
# GELU(x) = max(x, 0) − a·q(a) for either sign of x.
_P = np.float32(0.3275911 / math.sqrt(2))
_C = [
    np.float32(c / 2)
    for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
]


def gelu_(x: np.ndarray) -> None:
    """Exact (erf) GELU of a contiguous float32 array, in place."""
    if not x.flags.c_contiguous:
        raise ValueError("gelu_ works in place, so it needs a contiguous array")
    flat = x.reshape(-1)
    size = min(_BLOCK, flat.size)
    a, t, s, e = (np.empty(size, np.float32) for _ in range(4))
    for start in range(0, flat.size, _BLOCK):
        h = flat[start : start + _BLOCK]
        n = h.size
        a_, t_, s_, e_ = a[:n], t[:n], s[:n], e[:n]
        np.abs(h, out=a_)
        np.multiply(a_, _P, out=t_)
        t_ += 1
        np.reciprocal(t_, out=t_)
        np.multiply(t_, _C[4], out=s_)
        for c in (_C[3], _C[2], _C[1], _C[0]):
            s_ += c
            s_ *= t_
        np.multiply(a_, a_, out=e_)
        e_ *= np.float32(-0.5)
        np.exp(e_, out=e_)
        s_ *= e_
        s_ *= a_
        np.maximum(h, 0, out=h)
        h -= s_
