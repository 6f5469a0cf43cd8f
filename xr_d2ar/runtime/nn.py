"""The prior's building blocks on cext: each function mirrors one module of
:mod:`xr_d2ar.model.layers` op for op (same order of float operations), reading its weights
from a flat ``{name: float32 array}`` dict under a key prefix.

Element-wise adds and multiplies run in numpy (IEEE float32, one rounding per op, as torch);
every product, norm, softmax and activation runs in cext.  :class:`FlowBlock` runs a whole flow
transformer block in one cext call with the same operations in the same order (same bits).
"""

from __future__ import annotations

import numpy as np

from xr_d2ar import kernels
from xr_d2ar.kernels._api import _check
from xr_d2ar.kernels._backend import ffi, lib

__all__ = [
    "FlowBlock",
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


_BLOCK_FIELDS = {  # d2ar_flow_block_weights field -> weight name under the block prefix
    "attn_q_w": "attn.q.weight_t", "attn_q_b": "attn.q.bias",
    "attn_kv_w": "attn.kv.weight_t", "attn_kv_b": "attn.kv.bias",
    "attn_out_w": "attn.out.weight_t", "attn_out_b": "attn.out.bias",
    "norm_x_w": "norm_x.weight", "norm_x_b": "norm_x.bias",
    "cross_q_w": "cross.q.weight_t", "cross_q_b": "cross.q.bias",
    "cross_out_w": "cross.out.weight_t", "cross_out_b": "cross.out.bias",
    "fc1_w": "mlp.fc1.weight_t", "fc1_b": "mlp.fc1.bias",
    "fc2_w": "mlp.fc2.weight_t", "fc2_b": "mlp.fc2.bias",
}


class FlowBlock:
    """One flow transformer block (``{prefix}.*`` weights) as a single cext call.

    ``block(x, mod, ctx_kv, scratch)`` updates x (N, L, D) in place exactly as::

        s1, g1, a1, s2, g2, a2 = np.split(mod + table, 6, axis=-1)
        x = x + a1[:, None] * attention(modulate(layer_norm(x), s1, g1))
        x = x + attention(layer_norm_w(x), kv=ctx_kv)   # cross-attention
        x = x + a2[:, None] * mlp(modulate(layer_norm(x), s2, g2))

    with the functions of this module (same operations, same order, same bits); ``ctx_kv`` is
    the cross-attention's ``kv`` Linear of the context, (N, S, 2D) contiguous.
    """

    def __init__(self, w: Weights, prefix: str, heads: int) -> None:
        self._keep = {f: np.ascontiguousarray(w[f"{prefix}.{name}"], np.float32)
                      for f, name in _BLOCK_FIELDS.items()}
        self.table = np.ascontiguousarray(w[prefix + ".table"].reshape(-1), np.float32)
        self.heads = int(heads)
        self.dim = self.table.size // 6
        self.hidden = self._keep["fc1_b"].size
        self.scale = float(1.0 / np.sqrt(self.dim // self.heads))
        self._ptrs = {f: ffi.from_buffer("float[]", a) for f, a in self._keep.items()}
        self.struct = ffi.new("d2ar_flow_block_weights *", self._ptrs)

    def scratch(self, n: int, length: int, s: int) -> np.ndarray:
        """Scratch buffer for :meth:`__call__` on (n, length, D) with s context tokens."""
        return np.empty(int(lib.d2ar_flow_block_scratch(n, length, self.dim, self.hidden, s)),
                        np.float32)

    def __call__(self, x: np.ndarray, mod: np.ndarray, ctx_kv: np.ndarray,
                 scratch: np.ndarray) -> np.ndarray:
        n, length, d = x.shape
        s = ctx_kv.shape[1]
        # checked here, not asserted: the C kernel writes through these buffers (python -O too)
        ok = (
            d == self.dim and mod.shape == (n, 6 * d) and ctx_kv.shape == (n, s, 2 * d)
            and all(a.dtype == np.float32 and a.flags.c_contiguous for a in (x, mod, ctx_kv, scratch))
            and scratch.size >= lib.d2ar_flow_block_scratch(n, length, d, self.hidden, s)
        )
        if not ok:
            raise ValueError(
                f"flow block inputs must be C-contiguous float32: x (N, L, {self.dim}), mod (N, "
                f"{6 * self.dim}), ctx_kv (N, S, {2 * self.dim}) and a scratch() buffer. Got x "
                f"{x.shape} {x.dtype}, mod {mod.shape} {mod.dtype}, ctx_kv {ctx_kv.shape} "
                f"{ctx_kv.dtype}, scratch {scratch.size} {scratch.dtype}."
            )
        _check(lib.d2ar_flow_block_f32(
            n, length, d, self.heads, self.hidden, s, ffi.from_buffer("float[]", x),
            ffi.from_buffer("float[]", mod), ffi.from_buffer("float[]", self.table),
            ffi.from_buffer("float[]", ctx_kv), self.struct, self.scale, 1e-6,
            ffi.from_buffer("float[]", scratch)), "flow_block")
        return x
