"""The D2AR prior (torch; knows nothing of xarray).

Networks: :mod:`~xr_d2ar.model.vae` (EQ-VAE), :mod:`~xr_d2ar.model.tokenizer` (control tokens),
:mod:`~xr_d2ar.model.velocity` (flow transformer); process: :mod:`~xr_d2ar.model.flow`;
entropy model: :mod:`~xr_d2ar.model.token_model`. Users need only :func:`load_model`.
"""

from __future__ import annotations

from xr_d2ar.model.api import DEFAULT_PRIOR, D2arModel, load_model
from xr_d2ar.model.config import PRESETS, ModelConfig

__all__ = ["DEFAULT_PRIOR", "PRESETS", "D2arModel", "ModelConfig", "load_model"]
