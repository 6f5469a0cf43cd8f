"""Flow-matching velocity network (back end): a transformer over latent patches.

Forward, op by op (D = flow_dim, P = (T/4/p)**2 patches, k <= K tokens)::

    c   = Conditioner(t, geo, date, sensor)                     (N, D)   see conditioning.py
    mod = Linear_ada(SiLU(c))                                   (N, 6D)  shared by every block
    x   = Linear_in(patchify(z_t, p)) + pos                     (N, P, D) pos: fixed sin-cos table
    ctx = LN_ctx([null ; Linear_tok(codes(tokens)) + tok_pos[:k]])  (N, 1 + k, D)
    for each block i, with (s1, g1, a1, s2, g2, a2) = split(mod + table_i, 6):
        x = x + a1 * SelfAttn(LN(x) * (1 + g1) + s1)
        x = x + CrossAttn(LN_x(x), ctx)                         keys/values from ctx
        x = x + a2 * Mlp(LN(x) * (1 + g2) + s2)                 Mlp: Linear, GELU(tanh), Linear
    (s, g) = split(Linear_final(SiLU(c)), 2)
    v   = unpatchify(Linear_out(LN(x) * (1 + g) + s))           (N, C, h, w)

Every LayerNorm has eps 1e-6; the adaLN ones (before modulation) have no affine weights.
"""

from __future__ import annotations

import torch
from torch import nn

from xr_d2ar.model.conditioning import Conditioner
from xr_d2ar.model.config import ModelConfig
from xr_d2ar.model.layers import Attention, Mlp, modulate, patchify, sincos_2d, unpatchify

__all__ = ["VelocityNet"]


class _FlowBlock(nn.Module):
    def __init__(self, dim: int, heads: int, ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)
        self.attn = Attention(dim, heads)
        self.norm_x = nn.LayerNorm(dim, eps=1e-6)
        self.cross = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)
        self.mlp = Mlp(dim, ratio)
        self.table = nn.Parameter(torch.zeros(6, dim))  # per-block adaLN offsets

    def forward(
        self, x: torch.Tensor, mod: torch.Tensor, ctx: torch.Tensor, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        s1, g1, a1, s2, g2, a2 = (mod + self.table.reshape(1, -1)).chunk(6, dim=-1)  # each (N, D)
        x = x + a1[:, None] * self.attn(modulate(self.norm1(x), s1, g1))
        x = x + self.cross(self.norm_x(x), ctx, key_mask)
        return x + a2[:, None] * self.mlp(modulate(self.norm2(x), s2, g2))


class VelocityNet(nn.Module):
    """v(z_t, t | place, date, sensor, tokens): (N, C, h, w) -> (N, C, h, w)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        dim, p = cfg.flow_dim, cfg.patch_size
        self.patch_size, self.channels = p, cfg.latent_channels
        self.cond = Conditioner(dim, cfg.geo_octaves, cfg.n_sensors)
        self.ada = nn.Linear(dim, 6 * dim)
        self.proj_in = nn.Linear(cfg.latent_channels * p * p, dim)
        self.register_buffer("pos", sincos_2d(dim, cfg.latent_size // p))  # (P, D)
        self.tok_proj = nn.Linear(len(cfg.fsq_levels), dim)
        self.tok_pos = nn.Parameter(torch.randn(cfg.n_tokens, dim) * 0.02)  # (K, D)
        self.null = nn.Parameter(torch.randn(1, dim) * 0.02)  # always-present key
        self.norm_ctx = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            _FlowBlock(dim, cfg.flow_heads, cfg.mlp_ratio) for _ in range(cfg.flow_depth)
        )
        self.norm_out = nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False)
        self.final_ada = nn.Linear(dim, 2 * dim)
        self.proj_out = nn.Linear(dim, cfg.latent_channels * p * p)
        for lin in (self.ada, self.final_ada, self.proj_out):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def context(self, codes: torch.Tensor) -> torch.Tensor:
        """Token codes (N, k, D_fsq) -> cross-attention context (N, 1 + k, D)."""
        n, k = codes.shape[:2]
        tok = self.tok_proj(codes) + self.tok_pos[:k]  # (N, k, D)
        null = self.null.expand(n, -1, -1).to(tok.dtype)  # (N, 1, D)
        return self.norm_ctx(torch.cat([null, tok], dim=1))

    def forward(
        self,
        z_t: torch.Tensor,
        t: torch.Tensor,
        geo: torch.Tensor,
        date: torch.Tensor,
        sensor: torch.Tensor,
        codes: torch.Tensor,
        key_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """z_t (N, C, h, w); t (N,); geo (N, G); date (N, 5); sensor (N,); codes (N, k, D_fsq);
        key_mask (N, 1 + k) bool (True = attend) or None -> velocity (N, C, h, w)."""
        _, c, h, w = z_t.shape
        cond = self.cond(t, geo, date, sensor)  # (N, D)
        silu_c = nn.functional.silu(cond)
        mod = self.ada(silu_c)  # (N, 6D)
        ctx = self.context(codes)  # (N, 1 + k, D)
        x = self.proj_in(patchify(z_t, self.patch_size)) + self.pos  # (N, P, D)
        for block in self.blocks:
            x = block(x, mod, ctx, key_mask)
        shift, scale = self.final_ada(silu_c).chunk(2, dim=-1)
        x = self.proj_out(modulate(self.norm_out(x), shift, scale))  # (N, P, C p p)
        return unpatchify(x, self.patch_size, c, h, w)
