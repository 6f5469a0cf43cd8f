"""Training of D2AR priors: tiles streamed from cubes, the three stages, DDP, resumable checkpoints."""

from __future__ import annotations

from xr_d2ar.train.trainer import TrainConfig, train

__all__ = ["TrainConfig", "train"]
