"""NumPy fallback of the kernels, used only when ``XR_D2AR_KERNELS=numpy`` forces it.

Same maths as cext, but numpy's own summation order and ``exp``/``tanh``: results agree with
cext within float32 tolerance, not bit for bit.  Arguments arrive validated by ``_api``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "activation",
    "attention",
    "conv2d",
    "gemm",
    "group_norm",
    "layer_norm",
    "softmax",
    "to_bf16",
    "upsample_nearest",
]


def _widen(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint16:
        return (x.astype(np.uint32) << 16).view(np.float32)
    return x


def activation(x: np.ndarray, kind: str) -> np.ndarray:
    """Element-wise activation in float32."""
    x = np.asarray(x, np.float32)
    if kind == "relu":
        return np.maximum(x, np.float32(0))
    if kind == "silu":
        return x / (np.float32(1) + np.exp(-x))
    if kind == "gelu_tanh":
        u = np.float32(0.7978845608028654) * (x + np.float32(0.044715) * x * x * x)
        return np.float32(0.5) * x * (np.float32(1) + np.tanh(u))
    return x


def gemm(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None, act: str) -> np.ndarray:
    """``act(a @ b + bias)`` in float32 (bf16 bits widened first)."""
    c = _widen(a).astype(np.float32) @ _widen(b).astype(np.float32)
    if bias is not None:
        c = c + bias
    return activation(c, act)


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, pad: int, act: str) -> np.ndarray:
    """Stride-1 convolution via im2col and one matmul per sample."""
    n, cin, h, wd = x.shape
    cout, _, ks, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = h + 2 * pad - ks + 1, wd + 2 * pad - ks + 1
    cols = np.lib.stride_tricks.sliding_window_view(xp, (ks, ks), axis=(2, 3))  # (n,cin,ho,wo,k,k)
    cols = cols.transpose(0, 1, 4, 5, 2, 3).reshape(n, cin * ks * ks, ho * wo)
    y = w.reshape(cout, -1) @ cols
    if bias is not None:
        y = y + bias[None, :, None]
    return activation(y.reshape(n, cout, ho, wo).astype(np.float32), act)


def _normalise(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return ((x - mean) / np.sqrt(var + eps)).astype(np.float32)


def group_norm(x: np.ndarray, groups: int, gamma: np.ndarray | None, beta: np.ndarray | None,
               eps: float, act: str) -> np.ndarray:
    """GroupNorm of (N, C, ...) then activation."""
    n, c = x.shape[:2]
    y = _normalise(x.reshape(n, groups, -1), (2,), eps).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return activation(y, act)


def layer_norm(x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
               eps: float) -> np.ndarray:
    """LayerNorm over the last axis."""
    y = _normalise(x, (-1,), eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """``softmax(scale q k^T) v``."""
    s = (q @ np.swapaxes(k, -1, -2)) * np.float32(scale)
    return (softmax(s) @ v).astype(np.float32)


def upsample_nearest(x: np.ndarray, factor: int) -> np.ndarray:
    """Repeat the last two axes ``factor`` times."""
    return np.repeat(np.repeat(x, factor, axis=-2), factor, axis=-1)


def to_bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 to bf16 bits (nearest even)."""
    b = x.view(np.uint32).astype(np.uint64)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    r[nan] = ((b[nan] >> 16) | 0x40).astype(np.uint16)
    return r
