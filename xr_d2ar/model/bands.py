"""Band-set-agnostic stem and head: 1x1 convolutions whose weights come from each band's wavelength.

A band with centre wavelength ``wl`` and bandwidth ``bw`` (nm) gets an embedding
``e = Linear(SiLU(Linear(band_features(wl, bw))))`` of width E. From it:

- stem (image -> features): ``W = Linear_w(e)`` (C0,), ``U = Linear_u(e)`` (C0,); for every pixel
  ``f[c] = sum_b m_b (x_b W_b[c] + U_b[c]) / max(sum_b m_b, 1)`` where ``m_b`` is 1 where band b holds
  data (0 at nodata/missing bands). That is one (C0 x B) @ (B x HW) matmul per term.
- head (features -> image): ``y_b = sum_c H_b[c] f[c] + h_b`` with ``H = Linear_h(e)``,
  ``h = Linear_hb(e)``: a 1x1 convolution with generated weights.

For a fixed band set the generated weights can be computed once (the C runtime does so).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["N_BAND_FEATURES", "BandEmbedding", "BandHead", "BandStem", "band_features"]

_OCTAVES = 6
N_BAND_FEATURES = 2 + 2 * _OCTAVES


def band_features(wavelength: torch.Tensor, bandwidth: torch.Tensor) -> torch.Tensor:
    """Features of bands: (..., ) nm -> (..., N_BAND_FEATURES) float32.

    ``u = log2(wl / 400) / 5`` (0 at 400 nm, 1 at 12.8 um), its sin/cos at 6 octaves, and
    ``log2(bw / wl)``; a missing (NaN or <= 0) bandwidth counts as 5 % of the wavelength.
    """
    wl = wavelength.to(torch.float64)
    bw = bandwidth.to(torch.float64)
    bw = torch.where(torch.isfinite(bw) & (bw > 0), bw, 0.05 * wl)
    u = torch.log2(wl / 400.0) / 5.0
    freqs = math.pi * 2.0 ** torch.arange(_OCTAVES, dtype=torch.float64, device=wl.device)
    args = u[..., None] * freqs
    rel = torch.log2(bw / wl)[..., None] / 4.0
    return torch.cat([u[..., None], rel, torch.sin(args), torch.cos(args)], dim=-1).float()


class BandEmbedding(nn.Module):
    """(..., ) wavelength, bandwidth (nm) -> (..., dim) embedding."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(N_BAND_FEATURES, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, wavelength: torch.Tensor, bandwidth: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(band_features(wavelength, bandwidth))))


class BandStem(nn.Module):
    """Image (N, B, H, W) with pixel mask -> features (N, C0, H, W), for any band set."""

    def __init__(self, embed_dim: int, channels: int) -> None:
        super().__init__()
        self.weight = nn.Linear(embed_dim, channels)
        self.bias = nn.Linear(embed_dim, channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x, mask (N, B, H, W) (mask 1 = data); emb (N, B, E) -> (N, C0, H, W)."""
        w = self.weight(emb)  # (N, B, C0)
        u = self.bias(emb)  # (N, B, C0)
        f = torch.einsum("nbhw,nbc->nchw", x * mask, w) + torch.einsum("nbhw,nbc->nchw", mask, u)
        return f / mask.sum(dim=1, keepdim=True).clamp(min=1.0)


class BandHead(nn.Module):
    """Features (N, C, H, W) -> image (N, B, H, W) for the bands described by ``emb`` (N, B, E)."""

    def __init__(self, embed_dim: int, channels: int) -> None:
        super().__init__()
        self.weight = nn.Linear(embed_dim, channels)
        self.bias = nn.Linear(embed_dim, 1)

    def forward(self, f: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        w = self.weight(emb)  # (N, B, C)
        b = self.bias(emb)  # (N, B, 1)
        return torch.einsum("nchw,nbc->nbhw", f, w) + b[..., None]
