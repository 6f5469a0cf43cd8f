"""Statistics tokens: the first control tokens carry per-band tile and block means, by construction.

A learned token encoder trained for minutes on a small archive can fail to carry even the brightness
of a tile (a per-band image mean beats such a prior). So the first tokens are not learned. With
``S = stat_tokens`` and ``G = stat_grid`` (see :class:`~xr_d2ar.model.config.ModelConfig`)::

    positions [0, S)                 tile mean m_j of band j < S over its data pixels
    positions [S, S + S * G * G)     (G >= 2) the G x G block means of band j (row-major blocks,
                                     band-major order), as residuals r = m_block - m_j_hat to the
                                     quantised tile mean m_j_hat
    positions [S (1 + G * G), K)     learned tokens

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
not see them): a smooth correction, bilinear between block centres, brings each fully kept band's
G x G block means to the stored ones (:func:`apply_means`; the same numpy code for the torch and
cext decodes). Bands beyond the first S carry no statistic.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["STAT_LO", "apply_means", "n_stat_total", "stat_codes", "stat_step", "stat_tokens", "stat_values"]

STAT_LO = -4.0  # lowest representable normalised tile mean


def stat_step(codebook_size: int) -> float:
    """Quantisation step (normalised units) of a mean for a codebook of ``codebook_size``."""
    return max(0.05, 16.0 / (codebook_size - 2))


def n_stat_total(n_stat: int, grid: int) -> int:
    """Number of statistics tokens: ``S (1 + G * G)`` (G < 2 means no block level)."""
    return n_stat * (1 + grid * grid) if grid >= 2 else n_stat


def _quantise_mean(m: torch.Tensor, v: int) -> torch.Tensor:
    return torch.round((m - STAT_LO) / stat_step(v)).clamp(0, v - 2).to(torch.int64) + 1


def _quantise_residual(r: torch.Tensor, v: int) -> torch.Tensor:
    return (torch.round(r / stat_step(v)) + (v - 2) // 2).clamp(0, v - 2).to(torch.int64) + 1


def stat_tokens(
    x: torch.Tensor, mask: torch.Tensor, n_stat: int, codebook_size: int, grid: int = 0
) -> torch.Tensor:
    """Normalised tiles x and data mask (N, B, T, T) -> statistics tokens (N, S (1 + G G)) int64."""
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
    if grid >= 2:
        s = t // grid
        bc = m.reshape(n, b, grid, s, grid, s).sum((3, 5)).reshape(n, b, grid * grid)
        bs = xm.reshape(n, b, grid, s, grid, s).sum((3, 5)).reshape(n, b, grid * grid)
        m_hat = STAT_LO + (q.double() - 1) * stat_step(codebook_size)
        r = _quantise_residual(bs / bc.clamp(min=1.0) - m_hat[:, :, None], codebook_size)
        r = torch.where((bc > 0) & (q[:, :, None] > 0), r, torch.zeros_like(r))
        out[:, n_stat : n_stat + b * grid * grid] = r.reshape(n, b * grid * grid)
    return out


def stat_values(tokens: np.ndarray, codebook_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Tile-mean tokens (N, s) -> (tile means (N, s) float64, present (N, s) bool)."""
    tok = np.asarray(tokens, np.int64)
    present = tok > 0
    mean = np.where(present, STAT_LO + (tok - 1) * stat_step(codebook_size), 0.0)
    return mean, present


def _residual_values(tokens: np.ndarray, codebook_size: int) -> tuple[np.ndarray, np.ndarray]:
    tok = np.asarray(tokens, np.int64)
    present = tok > 0
    return np.where(present, (tok - 1 - (codebook_size - 2) // 2) * stat_step(codebook_size), 0.0), present


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
    """Bilinear basis (G G, T, T) between block centres (edges clamped) and the inverse of its
    block-mean matrix (G G, G G): correction = basis^T inv(M) (target - current)."""
    eye = torch.eye(grid * grid, dtype=torch.float64).reshape(grid * grid, 1, grid, grid)
    basis = F.interpolate(eye, size=(tile, tile), mode="bilinear", align_corners=False)[:, 0]
    s = tile // grid
    means = basis.reshape(grid * grid, grid, s, grid, s).mean((2, 4)).reshape(grid * grid, grid * grid)
    return basis.numpy(), np.linalg.inv(means.numpy().T)


def apply_means(y: np.ndarray, tokens: np.ndarray, n_stat: int, codebook_size: int, grid: int = 0) -> np.ndarray:
    """Bring decoded normalised tiles y (N, B, T, T) to the means stored in the kept ``tokens`` (N, k).

    Each band j < min(S, k, B) with a tile mean is shifted to it; then, where ``grid`` >= 2 and all
    G G block tokens of band j are kept and present, a smooth correction brings its block means to
    the stored ones. Returns a new float32 array.
    """
    y = np.array(y, np.float32, copy=True)
    tok = np.asarray(tokens)
    s = min(n_stat, tok.shape[1], y.shape[1])
    if s == 0 or y.shape[0] == 0:
        return y
    mean, present = stat_values(tok[:, :s], codebook_size)
    cur = y[:, :s].mean(axis=(2, 3), dtype=np.float64)
    y[:, :s] += np.where(present, mean - cur, 0.0).astype(np.float32)[:, :, None, None]
    if grid < 2:
        return y
    g2, t = grid * grid, y.shape[-1]
    full = max(0, min(s, (tok.shape[1] - n_stat) // g2))  # bands whose G G block tokens are all kept
    if full == 0:
        return y
    res, rp = _residual_values(tok[:, n_stat : n_stat + full * g2].reshape(-1, full, g2), codebook_size)
    ok = rp.all(axis=2) & present[:, :full]  # (N, full)
    basis, inv = _block_basis(t, grid)
    b = t // grid
    cur = y[:, :full].reshape(len(y), full, grid, b, grid, b).mean(axis=(3, 5), dtype=np.float64)
    diff = np.where(ok[:, :, None], mean[:, :full, None] + res - cur.reshape(len(y), full, g2), 0.0)
    # coef = inv @ diff and y += sum_q coef_q basis_q, each a fixed-order sum of g2 terms per value:
    # element-wise, so every tile's result is independent of the batch it is decoded in
    coef = sum(inv[:, p] * diff[:, :, p, None] for p in range(g2)).astype(np.float32)  # (N, full, g2)
    basis32 = basis.astype(np.float32)
    view = y[:, :full]
    for q in range(g2):
        view += coef[:, :, q, None, None] * basis32[q]
    return y
