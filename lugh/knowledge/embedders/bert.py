"""A BERT encoder's forward pass in float32 numpy, for inference only (no torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Elementwise work runs over blocks this size so its many passes stay in the CPU cache.
_BLOCK = 1 << 15


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
    qkv_w: np.ndarray  # (hidden, 3 * hidden): query, key and value fused into one matmul
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
        self._ln0 = _pair(w, "embeddings.LayerNorm")
        # Scaling the query projection once here saves scaling every score matrix.
        scale = np.float32(1 / math.sqrt(config.hidden_size // config.num_heads))
        self._layers = []
        for i in range(config.num_layers):
            p = f"encoder.layer.{i}."
            attn = p + "attention.self."
            self._layers.append(
                _Layer(
                    qkv_w=_linear_weight(
                        np.concatenate(
                            [w[attn + "query.weight"] * scale, w[attn + "key.weight"],
                             w[attn + "value.weight"]]
                        )
                    ),
                    qkv_b=np.concatenate(
                        [w[attn + "query.bias"] * scale, w[attn + "key.bias"], w[attn + "value.bias"]]
                    ),
                    out_w=_linear_weight(w[p + "attention.output.dense.weight"]),
                    out_b=w[p + "attention.output.dense.bias"],
                    ln1=_pair(w, p + "attention.output.LayerNorm"),
                    up_w=_linear_weight(w[p + "intermediate.dense.weight"]),
                    up_b=w[p + "intermediate.dense.bias"],
                    down_w=_linear_weight(w[p + "output.dense.weight"]),
                    down_b=w[p + "output.dense.bias"],
                    ln2=_pair(w, p + "output.LayerNorm"),
                )
            )

    @property
    def max_positions(self) -> int:
        return self._position.shape[0]

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """`ids` and `mask` are (batch, length); returns (batch, length, hidden) float32."""
        batch, length = ids.shape
        x = self._word[ids.reshape(-1)]
        x += np.tile(self._position[:length] + self._token_type, (batch, 1))
        x = self._layer_norm(x, self._ln0)
        # Padding keys get a large negative score so softmax gives them no weight.
        key_bias = np.where(mask, np.float32(0), np.float32(-1e9))[:, None, None, :]
        for layer in self._layers:
            x = self._layer(x, layer, key_bias, batch, length)
        return x.reshape(batch, length, -1)

    def _layer(
        self, x: np.ndarray, layer: _Layer, key_bias: np.ndarray, batch: int, length: int
    ) -> np.ndarray:
        heads = self.config.num_heads
        hidden = self.config.hidden_size
        qkv = x @ layer.qkv_w
        qkv += layer.qkv_b
        qkv = qkv.reshape(batch, length, 3, heads, hidden // heads)
        q = qkv[:, :, 0].transpose(0, 2, 1, 3)
        k = qkv[:, :, 1].transpose(0, 2, 3, 1)
        v = qkv[:, :, 2].transpose(0, 2, 1, 3)
        scores = q @ k
        scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        # Normalising the (length × head_dim) context is cheaper than the (length²) weights.
        context = scores @ v
        context /= scores.sum(axis=-1, keepdims=True)
        context = context.transpose(0, 2, 1, 3).reshape(batch * length, hidden)
        attended = context @ layer.out_w
        attended += layer.out_b
        attended += x
        x = self._layer_norm(attended, layer.ln1)

        inner = x @ layer.up_w
        inner += layer.up_b
        gelu_(inner)
        out = inner @ layer.down_w
        out += layer.down_b
        out += x
        return self._layer_norm(out, layer.ln2)

    def _layer_norm(self, x: np.ndarray, params: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """LayerNorm over the last axis of a 2-D array, in place."""
        weight, bias = params
        x -= x.mean(axis=-1, keepdims=True)
        variance = np.einsum("ij,ij->i", x, x)[:, None] / np.float32(x.shape[-1])
        variance += np.float32(self.config.layer_norm_eps)
        x *= 1 / np.sqrt(variance)
        x *= weight
        x += bias
        return x


def _linear_weight(weight: np.ndarray) -> np.ndarray:
    """A (out, in) torch Linear weight as a contiguous (in, out) matrix for `x @ w`."""
    return np.ascontiguousarray(weight.T)


def _pair(w: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    return w[prefix + ".weight"], w[prefix + ".bias"]


# Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), rewritten for GELU(x) = x·Φ(x):
# for a = |x|, Φ(-a) = q(a) = ½·poly(t)·exp(-a²/2) with t = 1 / (1 + p·a/√2), so
# GELU(x) = max(x, 0) − a·q(a) for either sign of x.
_P = np.float32(0.3275911 / math.sqrt(2))
_C = [np.float32(c / 2) for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)]


def gelu_(x: np.ndarray) -> None:
    """Exact (erf) GELU of a float32 array, in place."""
    flat = x.reshape(-1)
    size = min(_BLOCK, flat.size)
    a = np.empty(size, np.float32)
    t = np.empty(size, np.float32)
    s = np.empty(size, np.float32)
    e = np.empty(size, np.float32)
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
