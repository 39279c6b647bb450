"""A BERT encoder's forward pass in float32 numpy, for inference only (no torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Elementwise work runs over blocks this size so its many passes stay in the CPU cache.
_BLOCK = 1 << 15
# Floats of attention scores computed at once: a few sequences' worth.
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

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """`ids` and `mask` are (batch, length); returns (batch, length, hidden) float32.

        Safe to call from several threads at once (numpy releases the GIL in all the heavy
        work, so batches on different threads run in parallel).
        """
        batch, length = ids.shape
        scratch = _Scratch()
        x = scratch.get("x", (batch * length, self.config.hidden_size))
        np.take(self._word, ids.reshape(-1), axis=0, out=x)
        x.reshape(batch, length, -1)[:] += self._position[:length] + self._token_type
        self._layer_norm(x, self._ln0)
        # Padding keys get a large negative score so softmax gives them no weight.
        key_bias = np.where(mask, np.float32(0), np.float32(-1e9))[:, None, None, :]
        padded = ~mask.all(axis=1)
        for layer in self._layers:
            self._layer(x, layer, key_bias, padded, scratch)
        return x.reshape(batch, length, -1)

    def _layer(
        self,
        x: np.ndarray,
        layer: _Layer,
        key_bias: np.ndarray,
        padded: np.ndarray,
        scratch: _Scratch,
    ) -> None:
        """One encoder layer, updating `x` (batch · length, hidden) in place."""
        batch, _, _, length = key_bias.shape
        rows, hidden = x.shape
        heads = self.config.num_heads
        qkv = np.matmul(x, layer.qkv_w, out=scratch.get("qkv", (rows, 3 * hidden)))
        qkv += layer.qkv_b
        qkv = qkv.reshape(batch, length, 3, heads, hidden // heads)
        context = scratch.get("context", (rows, hidden))
        context_heads = context.reshape(batch, length, heads, -1).transpose(0, 2, 1, 3)
        # A few sequences at a time keep their (heads, length, length) scores in the cache.
        group = max(1, _SCORES_BLOCK // (heads * length * length))
        for lo in range(0, batch, group):
            hi = min(lo + group, batch)
            scores = scratch.get("scores", (hi - lo, heads, length, length))
            np.matmul(
                qkv[lo:hi, :, 0].transpose(0, 2, 1, 3),
                qkv[lo:hi, :, 1].transpose(0, 2, 3, 1),
                out=scores,
            )
            if padded[lo:hi].any():
                scores += key_bias[lo:hi]
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            out = context_heads[lo:hi]
            np.matmul(scores, qkv[lo:hi, :, 2].transpose(0, 2, 1, 3), out=out)
            # Dividing the (length × head_dim) context beats dividing the (length²) weights.
            out /= scores.sum(axis=-1, keepdims=True)

        attended = np.matmul(context, layer.out_w, out=scratch.get("attended", (rows, hidden)))
        attended += layer.out_b
        x += attended
        self._layer_norm(x, layer.ln1)

        inner = np.matmul(x, layer.up_w, out=scratch.get("inner", (rows, layer.up_w.shape[1])))
        inner += layer.up_b
        gelu_(inner)
        out = np.matmul(inner, layer.down_w, out=attended)
        out += layer.down_b
        x += out
        self._layer_norm(x, layer.ln2)

    def _layer_norm(self, x: np.ndarray, params: tuple[np.ndarray, np.ndarray]) -> None:
        """LayerNorm over the last axis of a 2-D array, in place."""
        weight, bias = params
        x -= x.mean(axis=-1, keepdims=True)
        variance = np.einsum("ij,ij->i", x, x)[:, None] / np.float32(x.shape[-1])
        variance += np.float32(self.config.layer_norm_eps)
        x *= 1 / np.sqrt(variance)
        x *= weight
        x += bias


class _Scratch:
    """Arrays reused across the layers of one forward pass: a fresh large array costs a page
    fault a page, which adds up to a tenth of the time."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
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
