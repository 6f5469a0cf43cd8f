"""Python entry points of the kernels: validate in Python, then call cext (GIL released) or,
when forced, the NumPy fallback.  Wrong types raise ``TypeError``, wrong shapes or values
``ValueError``, a failing kernel :class:`~xr_d2ar.errors.KernelError`."""

from __future__ import annotations

from typing import Any

import numpy as np

from xr_d2ar.errors import KernelError
from xr_d2ar.kernels import _numpy
from xr_d2ar.kernels._backend import ffi, lib, use_numpy

__all__ = [
    "ACTIVATIONS",
    "ALIGN",
    "activation",
    "attention",
    "conv2d",
    "empty_aligned",
    "from_bf16",
    "gemm",
    "group_norm",
    "layer_norm",
    "softmax",
    "to_bf16",
    "upsample_nearest",
]

#: Activation names and their C ids (D2AR_ACT_*).
ACTIVATIONS = {"none": 0, "relu": 1, "silu": 2, "gelu_tanh": 3}


#: Byte alignment of the arrays :func:`gemm` allocates (a cache line).
ALIGN = 64


def empty_aligned(
    shape: int | tuple[int, ...], dtype: Any = np.float32, *, offset: int = 0
) -> np.ndarray:
    """Like :func:`numpy.empty`, but the data start ``offset`` bytes past an ALIGN-byte (cache
    line) boundary.

    numpy's own arrays start wherever malloc puts them, often 16 or 32 bytes past a line; the
    AMX kernel's C tile rows then straddle two lines, 10-20% slower (BENCHMARKS.md section 6).
    ``offset`` (a multiple of the item size, below ALIGN) exists to measure exactly that.
    """
    dt = np.dtype(dtype)
    if not (0 <= offset < ALIGN) or offset % dt.itemsize:
        raise ValueError(
            f"offset must be a multiple of the item size ({dt.itemsize} B) in [0, {ALIGN}). "
            f"Got {offset} instead."
        )
    count = int(np.prod(shape))
    buf = np.empty(count * dt.itemsize + ALIGN + offset, np.uint8)
    start = -buf.ctypes.data % ALIGN + offset
    return buf[start:start + count * dt.itemsize].view(dt).reshape(shape)


def _act_id(name: str) -> int:
    if name not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {', '.join(ACTIVATIONS)}. Got {name!r} instead."
        )
    return ACTIVATIONS[name]


def _check(code: int, op: str) -> None:
    if code != 0:
        msg = ffi.string(lib.d2ar_strerror(code)).decode()
        raise KernelError(f"cext {op} failed with code {code}: {msg}.", code=code)


def _f32(x: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 array (copy only if needed)."""
    arr = np.asarray(x)
    if arr.dtype != np.float32:
        raise TypeError(
            f"{name} must be float32. Got {arr.dtype} instead. Cast with .astype(np.float32)."
        )
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions. Got shape {arr.shape} instead.")
    return np.ascontiguousarray(arr)


def _vec(x: Any, name: str, n: int) -> np.ndarray | None:
    if x is None:
        return None
    arr = _f32(x, name, 1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n}. Got {arr.shape[0]} instead.")
    return arr


_BUFFER_TYPES = {"float *": "float[]", "uint16_t *": "uint16_t[]"}


def _ptr(arr: np.ndarray | None, ctype: str = "float *") -> Any:
    if arr is None:
        return ffi.NULL
    if arr.flags.c_contiguous:  # buffer protocol: about 10x cheaper than arr.ctypes.data
        return ffi.from_buffer(_BUFFER_TYPES[ctype], arr)
    return ffi.cast(ctype, arr.ctypes.data)


def _strides(arr: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Element strides of a 2-D operand; copy when they are not positive whole elements."""
    item = arr.itemsize
    rs, cs = arr.strides
    if rs <= 0 or cs <= 0 or rs % item or cs % item:
        arr = np.ascontiguousarray(arr)
        rs, cs = arr.strides
    return arr, max(rs // item, 1), max(cs // item, 1)


def gemm(
    a: np.ndarray,
    b: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    activation: str = "none",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``act(a @ b + bias)`` with one sequential fma chain over k per element (bit-exact).

    Parameters
    ----------
    a : ndarray, shape (M, K)
        float32, or uint16 holding bf16 bits (see :func:`to_bf16`); any positive strides.
    b : ndarray, shape (K, N)
        Same dtype as ``a``; any positive strides (``w.T`` of a Linear weight needs no copy).
    bias : ndarray, shape (N,), optional
        float32, added after the product.
    activation : {'none', 'relu', 'silu', 'gelu_tanh'}
        Applied last, with the library's own polynomial ``exp``.
    out : ndarray, shape (M, N), optional
        float32 destination with unit column stride (allocated 64-byte aligned when omitted;
        the AMX backend is faster with an aligned one, see :func:`empty_aligned`).

    Returns
    -------
    ndarray, shape (M, N), float32

    Examples
    --------
    >>> import numpy as np
    >>> from xr_d2ar import kernels
    >>> kernels.gemm(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32))
    array([[3., 3.],
           [3., 3.]], dtype=float32)
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.uint16):
        raise TypeError(
            "gemm needs two float32 operands, or two uint16 operands holding bf16 bits. "
            f"Got {a.dtype} and {b.dtype} instead. Cast with .astype(np.float32) or to_bf16()."
        )
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(
            f"gemm needs a (M, K) and b (K, N). Got shapes {a.shape} and {b.shape} instead."
        )
    (m, k), n = a.shape, b.shape[1]
    bias = _vec(bias, "bias", n)
    act = _act_id(activation)
    if out is None:
        out = empty_aligned((m, n))
    elif (out.dtype != np.float32 or out.shape != (m, n) or (m and n and out.strides[1] != 4)
          or out.strides[0] % 4 or out.strides[0] < 4 * n):
        raise ValueError(
            f"out must be a float32 ({m}, {n}) array with unit column stride. "
            f"Got {out.dtype} {out.shape} with strides {out.strides} instead."
        )
    if out.size == 0:  # nothing to compute (and numpy gives empty arrays zero strides)
        return out
    if use_numpy():
        out[...] = _numpy.gemm(a, b, bias, activation)
        return out
    bf16 = a.dtype == np.uint16
    ctype = "uint16_t *" if bf16 else "float *"
    a, rsa, csa = _strides(a)
    b, rsb, csb = _strides(b)
    fn = lib.d2ar_gemm_bf16 if bf16 else lib.d2ar_gemm_f32
    code = fn(m, n, k, _ptr(a, ctype), rsa, csa, _ptr(b, ctype), rsb, csb, _ptr(bias),
              1 if bias is not None else 0, act, _ptr(out), max(out.strides[0] // 4, 1))
    _check(code, "gemm")
    return out


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    padding: int | None = None,
    activation: str = "none",
) -> np.ndarray:
    """2-D convolution, stride 1, zero padding (default ``k // 2``: same size for odd k).

    Parameters
    ----------
    x : ndarray, shape (N, Cin, H, W), float32
    weight : ndarray, shape (Cout, Cin, k, k), float32
    bias : ndarray, shape (Cout,), optional
    padding : int, optional
    activation : {'none', 'relu', 'silu', 'gelu_tanh'}

    Returns
    -------
    ndarray, shape (N, Cout, H + 2 padding - k + 1, W + 2 padding - k + 1), float32
    """
    x, w = _f32(x, "x", 4), _f32(weight, "weight", 4)
    cout, cin, kh, kw = w.shape
    if kh != kw or cin != x.shape[1]:
        raise ValueError(
            f"weight must be (Cout, {x.shape[1]}, k, k) for x of shape {x.shape}. "
            f"Got {w.shape} instead."
        )
    pad = kh // 2 if padding is None else int(padding)
    n, _, h, wd = x.shape
    ho, wo = h + 2 * pad - kh + 1, wd + 2 * pad - kh + 1
    if pad < 0 or ho < 1 or wo < 1:
        raise ValueError(f"padding must be >= 0 and leave an output. Got padding={pad} instead.")
    bias = _vec(bias, "bias", cout)
    act = _act_id(activation)
    if use_numpy():
        return _numpy.conv2d(x, w, bias, pad, activation)
    y = np.empty((n, cout, ho, wo), np.float32)
    _check(lib.d2ar_conv2d_f32(n, cin, h, wd, _ptr(x), cout, kh, pad, _ptr(w), _ptr(bias), act,
                               _ptr(y)), "conv2d")
    return y


def group_norm(
    x: np.ndarray,
    groups: int,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    *,
    eps: float = 1e-5,
    activation: str = "none",
) -> np.ndarray:
    """GroupNorm over (N, C, ...) with ``groups`` groups, per-channel affine, then activation.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...), float32
    groups : int
        Divides C.
    gamma, beta : ndarray, shape (C,), optional
    eps : float
    activation : {'none', 'relu', 'silu', 'gelu_tanh'}

    Returns
    -------
    ndarray, same shape as ``x``, float32
    """
    x = _f32(x, "x")
    if x.ndim < 2 or x.shape[1] < 1 or x.size == 0:
        raise ValueError(f"x must be (N, C, ...) and non-empty. Got shape {x.shape} instead.")
    n, c = x.shape[:2]
    if groups < 1 or c % groups:
        raise ValueError(f"groups must divide C={c}. Got {groups} instead.")
    gamma, beta = _vec(gamma, "gamma", c), _vec(beta, "beta", c)
    act = _act_id(activation)
    if use_numpy():
        return _numpy.group_norm(x, groups, gamma, beta, eps, activation)
    y = np.empty_like(x)
    hw = x.size // (n * c)
    _check(lib.d2ar_group_norm_f32(n, c, hw, groups, _ptr(x), _ptr(gamma), _ptr(beta), eps, act,
                                   _ptr(y)), "group_norm")
    return y


def layer_norm(
    x: np.ndarray,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    *,
    eps: float = 1e-5,
) -> np.ndarray:
    """LayerNorm over the last axis of ``x`` (..., C) float32; gamma/beta (C,) optional."""
    x = _f32(x, "x")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have a non-empty last axis. Got shape {x.shape} instead.")
    c = x.shape[-1]
    gamma, beta = _vec(gamma, "gamma", c), _vec(beta, "beta", c)
    if use_numpy():
        return _numpy.layer_norm(x, gamma, beta, eps)
    y = np.empty_like(x)
    _check(lib.d2ar_layer_norm_f32(x.size // c, c, _ptr(x), _ptr(gamma), _ptr(beta), eps,
                                   _ptr(y)), "layer_norm")
    return y


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of ``x`` (..., C) float32."""
    x = _f32(x, "x")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"x must have a non-empty last axis. Got shape {x.shape} instead.")
    if use_numpy():
        return _numpy.softmax(x)
    c = x.shape[-1]
    y = np.empty_like(x)
    _check(lib.d2ar_softmax_f32(x.size // c, c, _ptr(x), c, _ptr(y)), "softmax")
    return y


def attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, *, scale: float | None = None
) -> np.ndarray:
    """Scaled dot-product attention ``softmax(scale q k^T) v`` over leading batch axes.

    Parameters
    ----------
    q : ndarray, shape (..., Lq, D), float32
    k : ndarray, shape (..., Lk, D), float32
    v : ndarray, shape (..., Lk, Dv), float32
    scale : float, optional
        Default ``1 / sqrt(D)``.

    Returns
    -------
    ndarray, shape (..., Lq, Dv), float32
    """
    q, k, v = _f32(q, "q"), _f32(k, "k"), _f32(v, "v")
    if (q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim or q.shape[:-2] != k.shape[:-2]
            or v.shape[:-2] != q.shape[:-2] or q.shape[-1] != k.shape[-1]
            or k.shape[-2] != v.shape[-2] or k.shape[-2] < 1):
        raise ValueError(
            "attention needs q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv) with Lk >= 1. "
            f"Got {q.shape}, {k.shape}, {v.shape} instead."
        )
    d = q.shape[-1]
    scale = float(1.0 / np.sqrt(d)) if scale is None else float(scale)
    if use_numpy():
        return _numpy.attention(q, k, v, scale)
    lq, lk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
    bh = int(np.prod(q.shape[:-2], dtype=np.int64))
    o = np.empty((*q.shape[:-2], lq, dv), np.float32)
    _check(lib.d2ar_attention_f32(bh, lq, lk, d, dv, _ptr(q), _ptr(k), _ptr(v), scale, _ptr(o)),
           "attention")
    return o


def activation(x: np.ndarray, kind: str) -> np.ndarray:
    """Element-wise activation ('none', 'relu', 'silu', 'gelu_tanh') of float32 ``x``."""
    x = _f32(x, "x")
    act = _act_id(kind)
    if use_numpy():
        return _numpy.activation(x, kind)
    y = np.empty_like(x)
    _check(lib.d2ar_activation_f32(x.size, _ptr(x), act, _ptr(y)), "activation")
    return y


def upsample_nearest(x: np.ndarray, factor: int = 2) -> np.ndarray:
    """Nearest-neighbour upsampling of the last two axes of float32 ``x`` (..., H, W)."""
    x = _f32(x, "x")
    if x.ndim < 2 or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(
            f"upsample_nearest needs x (..., H, W) and an integer factor >= 1. "
            f"Got shape {x.shape} and factor {factor!r} instead."
        )
    if use_numpy():
        return _numpy.upsample_nearest(x, int(factor))
    *lead, h, w = x.shape
    y = np.empty((*lead, h * factor, w * factor), np.float32)
    nc = int(np.prod(lead, dtype=np.int64))
    _check(lib.d2ar_upsample_nearest_f32(nc, h, w, int(factor), _ptr(x), _ptr(y)), "upsample")
    return y


def to_bf16(x: np.ndarray) -> np.ndarray:
    """Round float32 ``x`` to bf16 (nearest even), returned as uint16 bits of the same shape."""
    x = _f32(x, "x")
    if use_numpy():
        return _numpy.to_bf16(x)
    y = np.empty(x.shape, np.uint16)
    _check(lib.d2ar_f32_to_bf16(x.size, _ptr(x), _ptr(y, "uint16_t *")), "to_bf16")
    return y


def from_bf16(bits: np.ndarray) -> np.ndarray:
    """Widen bf16 bits (uint16) to float32 exactly."""
    bits = np.asarray(bits)
    if bits.dtype != np.uint16:
        raise TypeError(f"bf16 bits must be uint16. Got {bits.dtype} instead.")
    return (bits.astype(np.uint32) << 16).view(np.float32)
