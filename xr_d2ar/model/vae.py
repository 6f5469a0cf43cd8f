"""Unified multispectral EQ-VAE: any band set <-> one latent ``(C, T/4, T/4)``.

Decoder, op by op (what the C runtime implements; ``w0, w1, w2 = vae_widths``)::

    z (N, C, h, w)                                     h = w = T/4 (any size works: fully convolutional)
    conv_in      Conv2d 3x3 C->w2, pad 1
    mid1, mid2   ResBlock(w2, w2)                      (see layers.ResBlock)
    up1          nearest 2x upsample, Conv2d 3x3 w2->w1, pad 1
    res1         ResBlock(w1, w1)
    up2          nearest 2x upsample, Conv2d 3x3 w1->w0, pad 1
    res2         ResBlock(w0, w0)
    norm_out     GroupNorm(min(8, w0) groups, eps 1e-6), SiLU
    head         BandHead: y_b = sum_c H_b[c] f[c] + h_b  (weights from the band embedding)
    -> (N, B, 4h, 4w) normalised reflectance (see normalise.py to get physical values)

The band embedding ``emb (N, B, E)`` is ``BandEmbedding(wavelength, bandwidth)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from xr_d2ar.model.bands import BandEmbedding, BandHead, BandStem
from xr_d2ar.model.config import ModelConfig
from xr_d2ar.model.layers import ResBlock

__all__ = ["VAE"]


class _Up(nn.Module):
    """Nearest-neighbour 2x upsampling then a 3x3 convolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class VAE(nn.Module):
    """Band-agnostic variational autoencoder with a 4x downsampling latent.

    Parameters
    ----------
    cfg : ModelConfig
        Uses ``band_embed_dim``, ``vae_widths`` and ``latent_channels``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w0, w1, w2 = cfg.vae_widths
        c = cfg.latent_channels
        self.band_embed = BandEmbedding(cfg.band_embed_dim)
        # encoder
        self.stem = BandStem(cfg.band_embed_dim, w0)
        self.enc = nn.Sequential(
            nn.Conv2d(w0, w0, 3, padding=1),
            ResBlock(w0, w0),
            nn.Conv2d(w0, w1, 3, stride=2, padding=1),
            ResBlock(w1, w1),
            nn.Conv2d(w1, w2, 3, stride=2, padding=1),
            ResBlock(w2, w2),
            nn.GroupNorm(min(8, w2), w2, eps=1e-6),
            nn.SiLU(),
            nn.Conv2d(w2, 2 * c, 1),
        )
        # decoder
        self.conv_in = nn.Conv2d(c, w2, 3, padding=1)
        self.mid1 = ResBlock(w2, w2)
        self.mid2 = ResBlock(w2, w2)
        self.up1 = _Up(w2, w1)
        self.res1 = ResBlock(w1, w1)
        self.up2 = _Up(w1, w0)
        self.res2 = ResBlock(w0, w0)
        self.norm_out = nn.GroupNorm(min(8, w0), w0, eps=1e-6)
        self.head = BandHead(cfg.band_embed_dim, w0)

    def embed_bands(self, wavelength: torch.Tensor, bandwidth: torch.Tensor) -> torch.Tensor:
        """wavelength, bandwidth (N, B) nm -> band embedding (N, B, E)."""
        return self.band_embed(wavelength, bandwidth)

    def encode(
        self, x: torch.Tensor, mask: torch.Tensor, emb: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x, mask (N, B, T, T) normalised values / 1 where data; emb (N, B, E).

        Returns the posterior mean and log-variance, each (N, C, T/4, T/4).
        """
        h = self.enc(self.stem(x, mask, emb))  # (N, 2C, T/4, T/4)
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-20.0, 10.0)

    def decode(self, z: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """z (N, C, h, w), emb (N, B, E) -> normalised image (N, B, 4h, 4w)."""
        f = self.mid2(self.mid1(self.conv_in(z)))  # (N, w2, h, w)
        f = self.res1(self.up1(f))  # (N, w1, 2h, 2w)
        f = self.res2(self.up2(f))  # (N, w0, 4h, 4w)
        return self.head(F.silu(self.norm_out(f)), emb)
