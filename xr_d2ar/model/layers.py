"""Building blocks shared by the networks; every op is one a C kernel library implements.

Ops used: ``Linear``, ``Conv2d`` 3x3 (padding 1) and 1x1, ``GroupNorm``, ``LayerNorm`` (eps 1e-6),
``SiLU``, ``GELU`` (tanh approximation), softmax attention ``softmax(q k^T / sqrt(d_head)) v``,
nearest-neighbour 2x upsampling, elementwise add/mul, reshapes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Attention",
    "Mlp",
    "ResBlock",
    "modulate",
    "patchify",
    "sincos_2d",
    "sinusoidal",
    "unpatchify",
]


class ResBlock(nn.Module):
    """``x + conv3x3(SiLU(GN(conv3x3(SiLU(GN(x))))))``, with a 1x1 skip conv when widths differ.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels; GroupNorm uses ``min(8, c)`` groups.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, c_in), c_in, eps=1e-6)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out, eps=1e-6)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, c_in, H, W) -> (N, c_out, H, W)
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head softmax attention; self-attention when ``context`` is None, else cross-attention.

    Parameters
    ----------
    dim : int
        Width of the queries (and of the output).
    heads : int
        Number of heads (``dim % heads == 0``).
    context_dim : int, optional
        Width of the keys/values source for cross-attention (default ``dim``).
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (N, L, D); context (N, S, Dc) or None; key_mask (N, S) bool, True = attend."""
        n, length, dim = x.shape
        src = x if context is None else context
        q = self.q(x).view(n, length, self.heads, -1).transpose(1, 2)  # (N, h, L, d)
        k, v = self.kv(src).view(n, src.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (N, 1, 1, S)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (N, h, L, d)
        return self.out(out.transpose(1, 2).reshape(n, length, dim))


class Mlp(nn.Module):
    """``Linear -> GELU(tanh) -> Linear`` with hidden width ``ratio * dim``."""

    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, ratio * dim)
        self.fc2 = nn.Linear(ratio * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation ``x * (1 + scale) + shift``; x (N, L, D), shift/scale (N, D)."""
    return x * (1 + scale[:, None]) + shift[:, None]


def patchify(z: torch.Tensor, p: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, H/p * W/p, C*p*p), patches in row-major order, features (C, py, px)."""
    n, c, h, w = z.shape
    z = z.view(n, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)  # (N, H/p, W/p, C, p, p)
    return z.reshape(n, (h // p) * (w // p), c * p * p)


def unpatchify(x: torch.Tensor, p: int, c: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: (N, H/p * W/p, C*p*p) -> (N, C, H, W)."""
    n = x.shape[0]
    x = x.view(n, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5)  # (N, C, H/p, p, W/p, p)
    return x.reshape(n, c, h, w)


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoidal features of scalars: x (N,) -> (N, dim) = [cos(x f_i), sin(x f_i)].

    Frequencies ``f_i = max_period ** (-i / (dim/2))``; computed in float64, returned float32.
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float64, device=x.device) / half
    )
    args = x.to(torch.float64)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).float()


def sincos_2d(dim: int, size: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position table (size*size, dim): half the width for y, half for x."""
    pos = torch.arange(size, dtype=torch.float64)
    gy, gx = torch.meshgrid(pos, pos, indexing="ij")
    emb_y = sinusoidal(gy.reshape(-1), dim // 2, max_period=100.0)
    emb_x = sinusoidal(gx.reshape(-1), dim // 2, max_period=100.0)
    return torch.cat([emb_y, emb_x], dim=-1)
