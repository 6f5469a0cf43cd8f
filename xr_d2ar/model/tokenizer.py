"""Control-token encoder (front end): latent -> K discrete tokens by finite scalar quantisation.

A small transformer reads the latent patches plus K learned register slots; each register's output is
projected to ``D = len(fsq_levels)`` values, squashed by a sigmoid to ``[0, L_i - 1]`` and rounded
(straight-through in training). A token is the mixed-radix integer of its D digits (first digit
least significant), so tokens lie in ``[0, prod(L))``. Training drops every token after a random
prefix length (nested dropout), which orders them coarse -> fine: any prefix is a valid code.
"""

from __future__ import annotations

import torch
from torch import nn

from xr_d2ar.model.config import ModelConfig
from xr_d2ar.model.layers import Attention, Mlp, patchify, sincos_2d

__all__ = ["FSQ", "TokenEncoder"]


class FSQ(nn.Module):
    """Finite scalar quantiser with ``levels`` per dimension.

    Codes (what the decoder sees) are digits mapped to [-1, 1]: ``code_i = 2 q_i / (L_i - 1) - 1``.
    """

    def __init__(self, levels: list[int]) -> None:
        super().__init__()
        lv = torch.tensor(levels, dtype=torch.int64)
        radix = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.int64), lv[:-1]]), 0)
        self.register_buffer("levels", lv, persistent=False)
        self.register_buffer("radix", radix, persistent=False)

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (..., D) real -> (codes (..., D) in [-1, 1] with straight-through grads, tokens (...) int64)."""
        top = (self.levels - 1).to(z.dtype)
        u = torch.sigmoid(z) * top
        q = u + (torch.round(u) - u).detach()
        tokens = (torch.round(u).to(torch.int64) * self.radix).sum(-1)
        return 2.0 * q / top - 1.0, tokens

    def codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (...) int -> codes (..., D) float32 in [-1, 1]."""
        digits = (tokens.to(torch.int64)[..., None] // self.radix) % self.levels
        return 2.0 * digits.float() / (self.levels - 1).float() - 1.0


class _Block(nn.Module):
    """Pre-LN transformer block: ``x + Attn(LN(x))``, ``x + Mlp(LN(x))``."""

    def __init__(self, dim: int, heads: int, ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TokenEncoder(nn.Module):
    """Normalised latent (N, C, h, w) -> the ``K - S`` learned FSQ tokens (``S = stat_tokens``,
    which :mod:`~xr_d2ar.model.stats` computes from the image and :class:`~xr_d2ar.model.net.D2arNet`
    puts first)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        p, dim = cfg.patch_size, cfg.enc_dim
        n_patches = (cfg.latent_size // p) ** 2
        self.patch_size = p
        self.proj = nn.Linear(cfg.latent_channels * p * p, dim)
        self.register_buffer("pos", sincos_2d(dim, cfg.latent_size // p))  # (P, dim)
        self.registers = nn.Parameter(torch.randn(cfg.n_tokens - cfg.stat_tokens, dim) * 0.02)  # (K - S, dim)
        self.blocks = nn.ModuleList(_Block(dim, cfg.enc_heads, cfg.mlp_ratio) for _ in range(cfg.enc_depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.out = nn.Linear(dim, len(cfg.fsq_levels))
        self.fsq = FSQ(cfg.fsq_levels)
        self.n_patches = n_patches

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (N, C, h, w) -> (codes (N, K - S, D) straight-through, tokens (N, K - S) int64)."""
        x = self.proj(patchify(z, self.patch_size)) + self.pos  # (N, P, dim)
        reg = self.registers.expand(x.shape[0], -1, -1).to(x.dtype)  # (N, K, dim)
        h = torch.cat([x, reg], dim=1)  # (N, P + K, dim)
        for block in self.blocks:
            h = block(h)
        raw = self.out(self.norm(h[:, self.n_patches :]))  # (N, K - S, D)
        return self.fsq.quantise(raw.float())
