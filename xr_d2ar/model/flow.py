"""Rectified flow: the probability path, its training target and the seeded few-step ODE sampler.

Path: ``z_t = (1 - t) eps + t z_1`` with ``eps ~ N(0, I)``; target velocity ``z_1 - eps``; ``t`` drawn
by :func:`sample_time`. Sampling integrates ``dz/dt = v(z, t)`` from ``t = 0`` (noise) to
``t = 1`` on a uniform grid with Euler or Heun steps. The starting noise of a tile depends only on
``(seed, tile_index)`` and is drawn on the CPU, so every backend starts from the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import numpy as np
import torch

__all__ = ["SOLVERS", "integrate", "interpolate", "sample_time", "tile_noise"]

SOLVERS = ("euler", "heun")


def sample_time(n: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """Flow times (n,) in [0, 1): half logit-normal, a quarter uniform, a quarter exactly 0.

    ``t = 0`` (pure noise in) is where the velocity must come from the conditioning and tokens
    alone, so it is sampled on purpose: that is the signal that teaches the token encoder.
    """
    u = torch.rand(n, device=device)
    logit_normal = torch.sigmoid(torch.randn(n, device=device))
    t = torch.where(u < 0.5, logit_normal, torch.rand(n, device=device))
    return torch.where(u >= 0.75, torch.zeros_like(t), t)


def interpolate(z1: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Point on the path and target velocity: z1, eps (N, ...), t (N,) -> (z_t, z1 - eps)."""
    tt = t.view(-1, *([1] * (z1.dim() - 1))).to(z1.dtype)
    return (1 - tt) * eps + tt * z1, z1 - eps


def tile_noise(shape: tuple[int, ...], *, seed: int, tile_index: np.ndarray) -> torch.Tensor:
    """Standard normal noise (N, *shape) float32 on the CPU, one stream per ``(seed, tile_index)``.

    The stream of tile i is ``torch.Generator().manual_seed(s_i)`` with
    ``s_i = numpy.random.SeedSequence([seed, tile_index[i]]).generate_state(1, uint64)[0] >> 1``,
    so a tile decodes the same whatever the batch it is decoded in.
    """
    index = np.asarray(tile_index, dtype=np.int64).reshape(-1)
    if seed < 0 or np.any(index < 0):
        raise ValueError(f"seed and tile_index must be >= 0. Got seed={seed}, min index={index.min()}.")
    out = torch.empty((len(index), *shape), dtype=torch.float32)
    gen = torch.Generator(device="cpu")
    for i, idx in enumerate(index):
        state = np.random.SeedSequence([int(seed), int(idx)]).generate_state(1, np.uint64)[0]
        gen.manual_seed(int(state >> np.uint64(1)))
        out[i] = torch.randn(shape, generator=gen, dtype=torch.float32)
    return out


def integrate(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    noise: torch.Tensor,
    *,
    steps: int = 8,
    solver: str = "euler",
) -> torch.Tensor:
    """Solve ``dz/dt = velocity(z, t)`` from t=0 (``noise``) to t=1 on a uniform grid of ``steps``.

    Parameters
    ----------
    velocity : callable
        ``(z (N, ...), t (N,)) -> v (N, ...)``.
    noise : torch.Tensor
        Starting point (N, ...).
    steps : int
        Number of steps (>= 1); Heun makes two velocity calls per step except the last.
    solver : {"euler", "heun"}
    """
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int. Got {steps!r} instead.")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}. Got {solver!r} instead.")
    z = noise
    n = z.shape[0]
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64).tolist()
    for t0, t1 in pairwise(grid):
        dt = t1 - t0
        v0 = velocity(z, torch.full((n,), t0, dtype=z.dtype, device=z.device))
        if solver == "heun" and t1 < 1.0:
            z_pred = z + dt * v0
            v1 = velocity(z_pred, torch.full((n,), t1, dtype=z.dtype, device=z.device))
            z = z + dt * 0.5 * (v0 + v1)
        else:
            z = z + dt * v0
    return z
