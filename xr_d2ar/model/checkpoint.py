"""Prior files: ``<name>.safetensors`` (weights) + ``<name>.json`` (config, with the weights' sha256).

No pickle anywhere. Matrices and convolution kernels (parameters with >= 2 dims) are stored as
bfloat16, everything else (biases, norms, fixed tables, latent statistics) as float32; the token
model's frequency table is stored as int32 under ``token_model.freq``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from xr_d2ar._hashing import sha256_file
from xr_d2ar.errors import DataNotFoundError, ModelMismatchError

__all__ = ["FORMAT_VERSION", "prior_paths", "read_prior", "save_prior", "save_tensors", "sha256_file", "verify_prior"]

FORMAT_VERSION = 1
_FREQ_KEY = "token_model.freq"


def prior_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights, config)`` paths of a prior given its ``.safetensors``, ``.json`` or stem path."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.glob("*.safetensors"))
        if len(found) != 1:
            raise DataNotFoundError(
                f"Expected exactly one *.safetensors prior in folder {p}. Got {len(found)} instead. "
                "Pass the path of the .safetensors file."
            )
        p = found[0]
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    weights, config = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for f in (weights, config):
        if not f.is_file():
            raise DataNotFoundError(
                f"Prior file {f} not found. A prior is a .safetensors weights file plus a .json config "
                "of the same name; pass the path of one of them (or train one with `d2ar train`)."
            )
    return weights, config


def save_tensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike,
                 metadata: dict[str, str] | None = None) -> None:
    """``safetensors`` ``save_file`` with the file readable as the process's umask allows, like
    any other file it writes (``save_file`` creates it owner-only, 0600, so a prior shared on a
    cluster would be unreadable by other users)."""
    save_file(tensors, str(path), metadata=metadata)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def save_prior(
    path: str | os.PathLike,
    state: dict[str, torch.Tensor],
    token_freq: np.ndarray,
    config: dict[str, Any],
    *,
    param_names: set[str],
) -> tuple[Path, Path]:
    """Write ``path`` stem as ``.safetensors`` + ``.json``; returns both paths.

    Parameters
    ----------
    state : dict of torch.Tensor
        ``module.state_dict()`` of the prior.
    token_freq : numpy.ndarray
        (K, V) uint32 token frequencies.
    config : dict
        JSON config; ``format_version``, ``sha256`` and ``weights`` are filled in here.
    param_names : set of str
        Names of learned parameters (those with >= 2 dims are stored as bfloat16).
    """
    stem = Path(path).with_suffix("") if Path(path).suffix in (".safetensors", ".json") else Path(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        value = value.detach().cpu()
        if value.is_floating_point():
            low = name in param_names and value.dim() >= 2
            value = value.to(torch.bfloat16 if low else torch.float32)
        tensors[name] = value.contiguous()
    tensors[_FREQ_KEY] = torch.from_numpy(np.asarray(token_freq, np.int64).astype(np.int32))
    weights = stem.with_suffix(".safetensors")
    save_tensors(tensors, weights, metadata={"format": "xr_d2ar.prior", "version": str(FORMAT_VERSION)})
    config = dict(config, format_version=FORMAT_VERSION, weights=weights.name, sha256=sha256_file(weights))
    json_path = stem.with_suffix(".json")
    json_path.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    return weights, json_path


def verify_prior(path: str | os.PathLike) -> tuple[Path, dict[str, Any], str]:
    """``(weights path, config, sha256)`` after checking that the two files belong together.

    Raises
    ------
    ModelMismatchError
        When the weights' sha256 differs from the one the JSON config records, or the format is
        not this version's.
    """
    weights, json_path = prior_paths(path)
    config = json.loads(json_path.read_text())
    if config.get("format_version") != FORMAT_VERSION:
        raise ModelMismatchError(
            f"Prior {json_path} has format_version {config.get('format_version')!r}; this xr_d2ar "
            f"reads {FORMAT_VERSION}. Upgrade xr_d2ar or retrain the prior."
        )
    sha = sha256_file(weights)
    if sha != config.get("sha256"):
        raise ModelMismatchError(
            f"Weights {weights} have sha256 {sha} but {json_path.name} records {config.get('sha256')}. "
            "The two files do not belong together: copy both from the same training run.",
            expected=config.get("sha256"),
            got=sha,
        )
    return weights, config, sha


def read_prior(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], np.ndarray, dict[str, Any], str, int]:
    """Read a prior: ``(state (float32), token_freq (K, V) uint32, config, sha256, nbytes)``.

    Raises
    ------
    ModelMismatchError
        See :func:`verify_prior`.
    """
    weights, config, sha = verify_prior(path)
    tensors = load_file(str(weights))
    freq = tensors.pop(_FREQ_KEY).numpy().astype(np.uint32)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    return state, freq, config, sha, weights.stat().st_size
