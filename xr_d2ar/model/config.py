"""Architecture configuration of the D2AR prior: one dataclass and a dict of size presets.

The config is JSON-only (every field a number, string or list) and travels inside every checkpoint,
so a model is always rebuilt from the architecture it was trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from itertools import pairwise
from typing import Any

import numpy as np

__all__ = ["PRESETS", "ModelConfig", "preset", "stat_levels"]


def stat_levels(grid: int | list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """``stat_grid`` as a tuple of block levels: 0 -> (), G -> (G,), [G1, G2] -> (G1, G2)."""
    levels = ([grid] if grid else []) if np.ndim(grid) == 0 else list(grid)
    if not all(isinstance(g, (int, np.integer)) and not isinstance(g, bool) for g in levels):
        raise ValueError(f"stat_grid must be an int or a list of ints. Got {grid!r} instead.")
    return tuple(int(g) for g in levels)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the three networks (EQ-VAE, control-token encoder, flow transformer).

    Attributes
    ----------
    tile_size : int
        T, pixels per tile side; a multiple of ``4 * patch_size`` (the VAE downsamples by 4).
    band_embed_dim : int
        Width of the per-band embedding computed from wavelength/bandwidth.
    vae_widths : list of int
        Channels of the VAE at full, 1/2 and 1/4 resolution.
    latent_channels : int
        C, channels of the latent (shape ``(C, T/4, T/4)``).
    patch_size : int
        Latent patch side for the transformers (tokens = ``(T / 4 / patch_size) ** 2``).
    enc_dim, enc_depth, enc_heads : int
        Control-token encoder transformer (front end, light).
    n_tokens : int
        K, control tokens per tile, ordered coarse -> fine.
    stat_tokens : int
        S, how many of the K tokens, first, are not learned but carry the tile mean of bands
        0..S-1 (see :mod:`~xr_d2ar.model.stats`); the encoder learns the other ``K - S``.
        0 (priors made before this field) = all learned.
    stat_grid : int or list of int
        Block levels of the statistics tokens: G, or increasing levels ``[G1, G2, ...]`` each dividing
        the next (e.g. ``[2, 4]``). Each of the S bands has G x G block-mean tokens per level, placed
        after the S tile means, level after level, so that ``S (1 + sum G^2)`` tokens are
        statistics; the encoder still computes ``K - S`` learned tokens, of which the first
        ``K - S (1 + sum G^2)`` are kept. 0 or ``[]`` = no block level.
    fsq_levels : list of int
        Levels of finite scalar quantisation per token dimension; codebook size is their product.
    flow_dim, flow_depth, flow_heads : int
        Flow-matching velocity transformer (back end).
    mlp_ratio : int
        Hidden width of every transformer MLP relative to its model width.
    geo_octaves : int
        Octaves of the Fourier features of the tile centre on the unit sphere (finest ~ 2**-octaves rad).
    n_sensors : int
        Size of the sensor embedding table (index 0 = unknown sensor).
    """

    tile_size: int = 64
    band_embed_dim: int = 64
    vae_widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    latent_channels: int = 8
    patch_size: int = 2
    enc_dim: int = 128
    enc_depth: int = 2
    enc_heads: int = 4
    n_tokens: int = 256
    stat_tokens: int = 0
    stat_grid: int | list[int] = 0
    fsq_levels: list[int] = field(default_factory=lambda: [8, 5, 5, 5])
    flow_dim: int = 160
    flow_depth: int = 6
    flow_heads: int = 5
    mlp_ratio: int = 4
    geo_octaves: int = 16
    n_sensors: int = 16

    def __post_init__(self) -> None:
        if np.ndim(self.stat_grid):  # a list in JSON: keep one form so that configs compare equal
            object.__setattr__(self, "stat_grid", [int(g) for g in self.stat_grid])
        step = 4 * self.patch_size
        if self.tile_size % step:
            raise ValueError(
                f"tile_size must be a multiple of 4 * patch_size = {step}. Got {self.tile_size} instead."
            )
        if len(self.vae_widths) != 3:
            raise ValueError(f"vae_widths needs 3 entries. Got {self.vae_widths!r} instead.")
        if not 0 <= self.stat_tokens < self.n_tokens:
            raise ValueError(
                f"stat_tokens must be in [0, n_tokens). Got {self.stat_tokens} with n_tokens={self.n_tokens}."
            )
        grids = self.stat_grids
        steps_ok = all(b > a and b % a == 0 for a, b in pairwise(grids))
        if any(g < 2 for g in grids) or not steps_ok or self.n_stat_total >= self.n_tokens or (
            grids and self.tile_size % grids[-1]
        ):
            raise ValueError(
                f"stat_grid must be 0, G >= 2 or increasing levels each dividing the next and the tile "
                f"size, and leave learned tokens (S (1 + sum G^2) < n_tokens). Got {self.stat_grid!r} "
                f"with S={self.stat_tokens}, K={self.n_tokens}, T={self.tile_size}."
            )
        if self.stat_tokens and (len(self.fsq_levels) < 2 or self.codebook_size < 3):
            raise ValueError("stat_tokens needs at least 2 FSQ dimensions and 3 codebook values.")
        for name in ("flow", "enc"):
            dim, heads = getattr(self, f"{name}_dim"), getattr(self, f"{name}_heads")
            if dim % heads:
                raise ValueError(f"{name}_dim must be divisible by {name}_heads. Got {dim}/{heads}.")

    @property
    def codebook_size(self) -> int:
        """Number of distinct tokens (product of ``fsq_levels``)."""
        size = 1
        for level in self.fsq_levels:
            size *= level
        return size

    @property
    def stat_grids(self) -> tuple[int, ...]:
        """Block levels of the statistics tokens, coarse to fine (``()`` without a block level)."""
        return stat_levels(self.stat_grid)

    @property
    def n_stat_total(self) -> int:
        """Number of statistics tokens, ``S (1 + sum G^2)`` (``S`` without a block level)."""
        return self.stat_tokens * (1 + sum(g * g for g in self.stat_grids))

    @property
    def latent_size(self) -> int:
        """Latent side ``T / 4``."""
        return self.tile_size // 4

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"Unknown model config keys {unknown}. Got a config from a newer xr_d2ar? "
                "Upgrade xr_d2ar or retrain."
            )
        return cls(**data)


#: Size presets. ``tiny`` is for tests on CPU; ``default`` is the shipped prior (tile, 2 x 2 and 4 x 4
#: block mean tokens for 10 bands: the 10 bands of Sentinel-2 and Landsat 8 in the sample cubes, 4.6 M
#: weights); ``large`` (138 M weights, 30x) is for archives of 10^5 tiles and more, trained on
#: GPUs, where the widths keep the tensor cores busy (see BENCHMARKS.md, training throughput).
PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        tile_size=32, band_embed_dim=16, vae_widths=[8, 16, 16], latent_channels=4, patch_size=2,
        enc_dim=32, enc_depth=1, enc_heads=2, n_tokens=16, stat_tokens=2, stat_grid=2, fsq_levels=[4, 4, 4], flow_dim=32,
        flow_depth=2, flow_heads=2, mlp_ratio=2, geo_octaves=12, n_sensors=16,
    ),
    "default": ModelConfig(stat_tokens=10, stat_grid=[2, 4]),
    "large": ModelConfig(
        band_embed_dim=128, vae_widths=[64, 128, 256], enc_dim=512, enc_depth=4, enc_heads=8, stat_tokens=10,
        stat_grid=[2, 4], flow_dim=768, flow_depth=12, flow_heads=12,
    ),
}


def preset(name: str) -> ModelConfig:
    """Return the preset ``name`` (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown model preset {name!r}. Choose one of {sorted(PRESETS)}.")
    return PRESETS[name]
