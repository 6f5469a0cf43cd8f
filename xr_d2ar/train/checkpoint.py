"""Resumable training checkpoints: ``<dir>/ckpt.safetensors`` + ``<dir>/ckpt.json``, no pickle.

Tensors: ``model.*`` (all weights and buffers), ``ema.*`` (EMA of the stage's parameters),
``opt.<i>.<key>`` (AdamW state of parameter i). JSON: ``format_version``, ``stage``, ``step``, the
optimizer's ``param_groups``, the run config and the sha256 of the tensors file.
Each file is written to a temporary and renamed, tensors first: a crash between the two renames
leaves a JSON that names other tensors, which :func:`load_checkpoint` refuses rather than resume
from a mix. No random state is stored: every training step seeds its own draws from (run seed,
rank, stage, step), and a resumed run replays the tile bank's refreshes, so it continues as the
uninterrupted run would have (:mod:`xr_d2ar.train.trainer`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from xr_d2ar._hashing import sha256_file
from xr_d2ar.model.checkpoint import save_tensors

__all__ = ["CKPT_FORMAT", "load_checkpoint", "restore_optimizer", "save_checkpoint"]

CKPT_FORMAT = 1


def _opt_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"opt.{idx}.{key}"] = value.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def save_checkpoint(
    folder: str | os.PathLike,
    *,
    model: torch.nn.Module,
    ema: dict[str, torch.Tensor] | None,
    opt: torch.optim.Optimizer,
    stage: str,
    step: int,
    extra: dict[str, Any],
) -> Path:
    """Write the checkpoint of ``stage`` after ``step`` optimizer steps; returns the JSON path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for k, v in (ema or {}).items():
        tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
    opt_t, groups = _opt_tensors(opt)
    tensors.update(opt_t)
    meta = {"format_version": CKPT_FORMAT, "stage": stage, "step": step, "param_groups": groups, **extra}
    tmp = out / "ckpt.safetensors.tmp"
    save_tensors(tensors, tmp)
    meta["tensors_sha256"] = sha256_file(tmp)
    os.replace(tmp, out / "ckpt.safetensors")
    tmp_json = out / "ckpt.json.tmp"
    tmp_json.write_text(json.dumps(meta, indent=1, default=str))
    os.replace(tmp_json, out / "ckpt.json")
    return out / "ckpt.json"


def load_checkpoint(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Return ``(tensors, meta)`` of the checkpoint in ``folder``, or None when there is none."""
    folder = Path(folder)
    if not (folder / "ckpt.json").is_file() or not (folder / "ckpt.safetensors").is_file():
        return None
    meta = json.loads((folder / "ckpt.json").read_text())
    if meta.get("format_version") != CKPT_FORMAT:
        raise ValueError(
            f"Checkpoint {folder} has format_version {meta.get('format_version')}; expected {CKPT_FORMAT}. "
            "Start a fresh run in another folder."
        )
    weights = folder / "ckpt.safetensors"
    if meta.get("tensors_sha256") not in (None, sha256_file(weights)):
        raise ValueError(
            f"Checkpoint {folder} is inconsistent: ckpt.json (step {meta.get('step')}) names "
            "other tensors than ckpt.safetensors holds (a crash while saving?). Delete the "
            "folder's checkpoint/ to restart the stage, or start a fresh run in another folder."
        )
    return load_file(str(weights)), meta


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    """Load AdamW state saved by :func:`save_checkpoint` into ``opt``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": groups})
