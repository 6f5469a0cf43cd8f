"""The prior's building blocks on cext: each function mirrors one module of
:mod:`xr_d2ar.model.layers` op for op (same order of float operations), reading its weights
from a flat ``{name: float32 array}`` dict under a key prefix.

Element-wise adds and multiplies run in numpy (IEEE float32, one rounding per op, as torch);
every product, norm, softmax and activation runs in cext.
"""

from __future__ import annotations

import numpy as np

from xr_d2ar import kernels

__all__ = [
    "Weights",
    "attention",
    "conv",
    "keys_values",
    "layer_norm",
    "linear",
    "mlp",
    "modulate",
    "patchify",
    "res_block",
    "transposed",
    "unpatchify",
]

Weights = dict[str, np.ndarray]


def transposed(weights: Weights) -> Weights:
    """``weights`` plus ``<name>.weight_t``: a contiguous (in, out) copy of every 2-D Linear
    weight, which :func:`linear` multiplies by (unit-stride B packs faster than ``W.T``)."""
    extra = {
        k + "_t": np.ascontiguousarray(v.T)
        for k, v in weights.items()
        if k.endswith(".weight") and v.ndim == 2
    }
    return {**weights, **extra}


def linear(w: Weights, prefix: str, x: np.ndarray, *, activation: str = "none") -> np.ndarray:
    """``nn.Linear``: x (..., in) -> (..., out), with the (in, out) weight of :func:`transposed`."""
    weight_t, bias = w[prefix + ".weight_t"], w.get(prefix + ".bias")
    flat = x.reshape(-1, x.shape[-1])
    y = kernels.gemm(flat, weight_t, bias, activation=activation)  # (rows, out)
    return y.reshape(*x.shape[:-1], weight_t.shape[1])


def layer_norm(w: Weights, prefix: str | None, x: np.ndarray) -> np.ndarray:
    """``nn.LayerNorm(eps=1e-6)`` over the last axis; ``prefix`` None = no affine weights."""
    if prefix is None:
        return kernels.layer_norm(x, eps=1e-6)
    return kernels.layer_norm(x, w[prefix + ".weight"], w[prefix + ".bias"], eps=1e-6)


def attention(w: Weights, prefix: str, x: np.ndarray, heads: int, *,
              kv: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``layers.Attention`` without key mask: x (N, L, D) -> (N, L, D).

    ``kv`` are precomputed keys/values (N, h, S, d) for cross-attention (see :func:`keys_values`);
    None means self-attention on ``x``.
    """
    n, length, dim = x.shape
    q = linear(w, prefix + ".q", x).reshape(n, length, heads, -1).transpose(0, 2, 1, 3)
    k, v = keys_values(w, prefix, x, heads) if kv is None else kv
    out = kernels.attention(q, k, v)  # (N, h, L, d)
    return linear(w, prefix + ".out", out.transpose(0, 2, 1, 3).reshape(n, length, dim))


def keys_values(w: Weights, prefix: str, src: np.ndarray, heads: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Keys and values (N, h, S, d) of ``src`` (N, S, Dc) for an ``Attention`` module."""
    n, s, _ = src.shape
    kv = linear(w, prefix + ".kv", src).reshape(n, s, 2, heads, -1).transpose(2, 0, 3, 1, 4)
    return kv[0], kv[1]


def mlp(w: Weights, prefix: str, x: np.ndarray) -> np.ndarray:
    """``layers.Mlp``: Linear, GELU (tanh, fused), Linear."""
    return linear(w, prefix + ".fc2", linear(w, prefix + ".fc1", x, activation="gelu_tanh"))


def modulate(x: np.ndarray, shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``x * (1 + scale) + shift``; x (N, L, D), shift/scale (N, D)."""
    return x * (np.float32(1) + scale[:, None]) + shift[:, None]


def _group_norm_silu(w: Weights, prefix: str, x: np.ndarray) -> np.ndarray:
    c = x.shape[1]
    return kernels.group_norm(x, min(8, c), w[prefix + ".weight"], w[prefix + ".bias"],
                              eps=1e-6, activation="silu")


def conv(w: Weights, prefix: str, x: np.ndarray) -> np.ndarray:
    """``nn.Conv2d`` with stride 1 and 'same' padding (3x3 pad 1, 1x1 pad 0)."""
    return kernels.conv2d(x, w[prefix + ".weight"], w[prefix + ".bias"])


def res_block(w: Weights, prefix: str, x: np.ndarray) -> np.ndarray:
    """``layers.ResBlock``: x (N, c_in, H, W) -> (N, c_out, H, W)."""
    h = conv(w, prefix + ".conv1", _group_norm_silu(w, prefix + ".norm1", x))
    h = conv(w, prefix + ".conv2", _group_norm_silu(w, prefix + ".norm2", h))
    skip = conv(w, prefix + ".skip", x) if prefix + ".skip.weight" in w else x
    return skip + h


def patchify(z: np.ndarray, p: int) -> np.ndarray:
    """(N, C, H, W) -> (N, H/p * W/p, C*p*p), as :func:`xr_d2ar.model.layers.patchify`."""
    n, c, h, wd = z.shape
    z = z.reshape(n, c, h // p, p, wd // p, p).transpose(0, 2, 4, 1, 3, 5)
    return np.ascontiguousarray(z).reshape(n, (h // p) * (wd // p), c * p * p)


def unpatchify(x: np.ndarray, p: int, c: int, h: int, wd: int) -> np.ndarray:
    """Inverse of :func:`patchify`: (N, H/p * W/p, C*p*p) -> (N, C, H, W)."""
    n = x.shape[0]
    x = x.reshape(n, h // p, wd // p, c, p, p).transpose(0, 3, 1, 4, 2, 5)
    return np.ascontiguousarray(x).reshape(n, c, h, wd)
