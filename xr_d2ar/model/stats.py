"""Statistics tokens: the first control tokens carry per-band tile and block means, by construction.

A learned token encoder trained for minutes on a small archive can fail to carry even the brightness
of a tile (a per-band image mean beats such a prior). So the first tokens are not learned. With
``S = stat_tokens`` and block levels ``G1 < G2 < ...`` (``stat_grid``, see
:class:`~xr_d2ar.model.config.ModelConfig`)::

    positions [0, S)                       tile mean m_j of band j < S over its data pixels
    next S * G1 * G1 positions             level G1: the G1 x G1 block means of each band (row-major
                                           blocks, band-major order) as residuals to the quantised
                                           value of the parent (the tile mean)
    next S * G2 * G2 positions             level G2: residuals to the quantised level-G1 value of the
                                           block each G2 block lies in; and so on
    positions [S (1 + sum G^2), K)         learned tokens

all in normalised units (:mod:`~xr_d2ar.model.normalise`), quantised on fixed grids::

    token = 0                                                    band absent / no data pixel
    tile mean:  token = 1 + clip(round((m - STAT_LO) / step), 0, V - 2)
    residual:   token = 1 + clip(round(r / step) + (V - 2) // 2, 0, V - 2)      step = stat_step(V)

They are ordinary tokens of the codebook ``[0, V)``: stored, entropy-coded (per-position frequency
tables) and counted in the ratio like any other, and the nested prefix order keeps them first
(coarse -> fine). The decoder uses the tile means twice: as the first S entries of the flow's
cross-attention context (codes ``[asinh(m), +1, 0, ...]``, ``[0, -1, 0, ...]`` when absent;
learned tokens keep their FSQ codes and follow them), and after the VAE decoder, where each band
with a kept tile mean is shifted to it. Block means only act after the VAE decoder (the flow does
not see them): for each band, the finest level whose G x G tokens are all kept and present gives
a smooth correction, bilinear between block centres, that brings the band's G x G block means to
the stored ones (:func:`apply_means`; the same numpy code for the torch and cext decodes). Bands
beyond the first S carry no statistic.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from xr_d2ar.model.config import stat_levels

__all__ = ["STAT_LO", "apply_means", "n_stat_total", "stat_codes", "stat_step", "stat_tokens", "stat_values"]

STAT_LO = -4.0  # lowest representable normalised tile mean


def stat_step(codebook_size: int) -> float:
    """Quantisation step (normalised units) of a mean for a codebook of ``codebook_size``."""
    return max(0.05, 16.0 / (codebook_size - 2))


def n_stat_total(n_stat: int, grid: int | list[int] | tuple[int, ...]) -> int:
    """Number of statistics tokens: ``S (1 + sum G^2)`` over the block levels (0: none)."""
    return n_stat * (1 + sum(g * g for g in stat_levels(grid)))


def _quantise_mean(m: torch.Tensor, v: int) -> torch.Tensor:
    return torch.round((m - STAT_LO) / stat_step(v)).clamp(0, v - 2).to(torch.int64) + 1


def _quantise_residual(r: torch.Tensor, v: int) -> torch.Tensor:
    return (torch.round(r / stat_step(v)) + (v - 2) // 2).clamp(0, v - 2).to(torch.int64) + 1


def _residual_value(tokens: torch.Tensor, v: int) -> torch.Tensor:
    return (tokens.double() - 1 - (v - 2) // 2) * stat_step(v)


def stat_tokens(
    x: torch.Tensor, mask: torch.Tensor, n_stat: int, codebook_size: int,
    grid: int | list[int] | tuple[int, ...] = 0,
) -> torch.Tensor:
    """Normalised tiles x and data mask (N, B, T, T) -> statistics tokens (N, S (1 + sum G^2)) int64."""
    n, _, t, _ = x.shape
    out = torch.zeros(n, n_stat_total(n_stat, grid), dtype=torch.int64, device=x.device)
    b = min(n_stat, x.shape[1])
    if b == 0:
        return out
    m = mask[:, :b].double()
    xm = x[:, :b].double() * m
    count = m.sum((2, 3))
    q = _quantise_mean(xm.sum((2, 3)) / count.clamp(min=1.0), codebook_size)
    q = torch.where(count > 0, q, torch.zeros_like(q))
    out[:, :b] = q
    parent = (STAT_LO + (q.double() - 1) * stat_step(codebook_size))[:, :, None, None]  # quantised values
    parent_ok = (q > 0)[:, :, None, None]
    pos = n_stat
    for g in stat_levels(grid):
        s, f = t // g, g // parent.shape[-1]
        bc = m.reshape(n, b, g, s, g, s).sum((3, 5))  # (N, b, G, G)
        bs = xm.reshape(n, b, g, s, g, s).sum((3, 5))
        up = parent.repeat_interleave(f, 2).repeat_interleave(f, 3)
        ok = (bc > 0) & parent_ok.repeat_interleave(f, 2).repeat_interleave(f, 3)
        r = _quantise_residual(bs / bc.clamp(min=1.0) - up, codebook_size)
        r = torch.where(ok, r, torch.zeros_like(r))
        out[:, pos : pos + b * g * g] = r.reshape(n, b * g * g)
        parent, parent_ok = torch.where(ok, up + _residual_value(r, codebook_size), up), ok
        pos += n_stat * g * g
    return out


def stat_values(tokens: np.ndarray, codebook_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Tile-mean tokens (N, s) -> (tile means (N, s) float64, present (N, s) bool)."""
    tok = np.asarray(tokens, np.int64)
    present = tok > 0
    mean = np.where(present, STAT_LO + (tok - 1) * stat_step(codebook_size), 0.0)
    return mean, present


def stat_codes(tokens: torch.Tensor, codebook_size: int, dim: int) -> torch.Tensor:
    """Tile-mean tokens (N, s) -> flow context codes (N, s, dim) float32 (``dim`` >= 2)."""
    present = tokens > 0
    mean = STAT_LO + (tokens.to(torch.float64) - 1) * stat_step(codebook_size)
    codes = torch.zeros(*tokens.shape, dim, dtype=torch.float32, device=tokens.device)
    codes[..., 0] = torch.where(present, torch.asinh(mean), torch.zeros_like(mean)).float()
    codes[..., 1] = present.float() * 2.0 - 1.0
    return codes


@lru_cache(maxsize=8)
def _block_basis(tile: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """1-D linear weights W (G, T) between block centres (edges clamped), float32, and the inverse
    (G, G) of their block-mean matrix M[a, c] = mean of W[a] over block c, transposed.

    The 2-D correction ``sum_ab C[a, b] W[a, y] W[b, x]`` (bilinear) has block means ``M^T C M``,
    so ``C = inv(M^T) D inv(M)`` brings them to the differences D.
    """
    eye = torch.eye(grid, dtype=torch.float64)[:, None, :]
    w = F.interpolate(eye, size=tile, mode="linear", align_corners=False)[:, 0]  # (G, T)
    means = w.reshape(grid, grid, tile // grid).mean(2)  # (G, G): [a, c]
    return w.numpy().astype(np.float32), np.linalg.inv(means.numpy().T)


def apply_means(
    y: np.ndarray, tokens: np.ndarray, n_stat: int, codebook_size: int,
    grid: int | list[int] | tuple[int, ...] = 0,
) -> np.ndarray:
    """Bring decoded normalised tiles y (N, B, T, T) to the means stored in the kept ``tokens`` (N, k).

    Each band j < min(S, k, B) with a tile mean is shifted to it; then the finest block level whose
    G x G tokens of band j are all kept and present brings the band's block means to the stored
    ones with a smooth (bilinear) correction. Every output value is a fixed-order sum over its own
    tile: a tile's result does not depend on the batch it is decoded in. Returns a new float32 array.
    """
    y = np.array(y, np.float32, copy=True)
    tok = np.asarray(tokens)
    s = min(n_stat, tok.shape[1], y.shape[1])
    if s == 0 or y.shape[0] == 0:
        return y
    n, t = len(y), y.shape[-1]
    mean, present = stat_values(tok[:, :s], codebook_size)
    cur = y[:, :s].mean(axis=(2, 3), dtype=np.float64)
    y[:, :s] += np.where(present, mean - cur, 0.0).astype(np.float32)[:, :, None, None]
    # per level: stored block values (N, full, G, G), whether usable, and the number of fully kept bands
    levels = []
    parent, parent_ok = mean[:, :, None, None], present[:, :, None, None]
    pos = n_stat
    for g in stat_levels(grid):
        full = max(0, min(s, (tok.shape[1] - pos) // (g * g)))
        if full == 0:
            break
        f = g // parent.shape[-1]
        r = np.asarray(tok[:, pos : pos + full * g * g], np.int64).reshape(n, full, g, g)
        up = parent[:, :full].repeat(f, 2).repeat(f, 3)
        ok = (r > 0) & parent_ok[:, :full].repeat(f, 2).repeat(f, 3)
        value = up + (r - 1 - (codebook_size - 2) // 2) * stat_step(codebook_size)
        levels.append((g, full, np.where(ok, value, up), ok.all(axis=(2, 3))))
        parent, parent_ok = levels[-1][2], ok
        pos += n_stat * g * g
    chosen = np.zeros((n, s), np.int64)  # finest usable level per band (0: none)
    for i, (_, full, _, usable) in enumerate(levels, 1):
        chosen[:, :full] = np.where(usable, i, chosen[:, :full])
    for i, (g, full, target, _) in enumerate(levels, 1):
        use = chosen[:, :full] == i
        if not use.any():
            continue
        w, inv = _block_basis(t, g)
        view = y[:, :full]
        cur = view.reshape(n, full, g, t // g, g, t // g).mean(axis=(3, 5), dtype=np.float64)
        d = np.where(use[:, :, None, None], target - cur, 0.0)
        # C = inv D inv^T and corr[y, x] = sum_a W[a, y] sum_b C[a, b] W[b, x], each sum in a fixed order
        left = sum(inv[None, None, :, c, None] * d[:, :, None, c, :] for c in range(g))  # (N, full, G, G)
        coef = sum(left[:, :, :, e, None] * inv[None, None, None, :, e] for e in range(g)).astype(np.float32)
        rows = sum(coef[:, :, :, b, None] * w[b] for b in range(g))  # (N, full, G, T)
        for a in range(g):
            view += w[a][:, None] * rows[:, :, a, None, :]
    return y
