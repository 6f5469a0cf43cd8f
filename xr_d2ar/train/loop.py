"""One training stage: AdamW, warmup + cosine LR, grad clipping, EMA, metrics log, checkpoints."""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from xr_d2ar.train.checkpoint import restore_optimizer, save_checkpoint
from xr_d2ar.train.runtime import Runtime

__all__ = ["MetricsLog", "StageSpec", "run_stage"]


@dataclass(frozen=True)
class StageSpec:
    """Schedule of one stage: at most ``steps`` optimizer steps and ``minutes`` of wall clock (0 = no
    limit), peak ``lr`` after ``warmup`` steps, cosine decay over whichever budget runs out first."""

    name: str
    steps: int
    lr: float
    warmup: int = 100
    minutes: float = 0.0
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999

    def progress(self, step: int, elapsed_s: float) -> float:
        """Fraction of the stage done after ``step`` steps and ``elapsed_s`` seconds."""
        frac = (step - self.warmup) / max(1, self.steps - self.warmup)
        if self.minutes > 0:
            frac = max(frac, elapsed_s / (60.0 * self.minutes))
        return frac

    def lr_at(self, step: int, elapsed_s: float = 0.0) -> float:
        """Linear warmup to ``lr`` then cosine decay to ``lr / 10`` at progress 1."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        frac = min(max(self.progress(step, elapsed_s), 0.0), 1.0)
        return self.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))


class MetricsLog:
    """Append-only CSV of training metrics (``metrics.csv``); columns fixed by the first row."""

    def __init__(self, folder: str | os.PathLike, *, enabled: bool = True) -> None:
        self.path = Path(folder) / "metrics.csv"
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []

    FIELDS = ("stage", "step", "loss", "val_loss", "lr", "tiles_per_s", "elapsed_s", "extra")

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (keys not in FIELDS go into ``extra`` as ``k=v;...``)."""
        self.rows.append(row)
        if not self.enabled:
            return
        extra = ";".join(f"{k}={v:.6g}" for k, v in row.items() if k not in self.FIELDS)
        out = {k: row.get(k, "") for k in self.FIELDS[:-1]} | {"extra": extra}
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(out)


def run_stage(
    spec: StageSpec,
    objective: torch.nn.Module,
    params: dict[str, torch.nn.Parameter],
    next_args: Callable[[int], tuple],
    rt: Runtime,
    *,
    log: MetricsLog,
    ckpt_dir: str | os.PathLike,
    ckpt_model: torch.nn.Module,
    ckpt_extra: dict[str, Any],
    start_step: int = 0,
    start_elapsed: float = 0.0,
    restore: dict[str, torch.Tensor] | None = None,
    restore_groups: list[dict] | None = None,
    ckpt_every: int = 500,
    log_every: int = 20,
    eval_fn: Callable[[], float] | None = None,
    eval_every: int = 200,
    batch_size: int = 1,
    progress: bool = True,
    finalise: Callable[[dict[str, torch.Tensor]], None] | None = None,
) -> int:
    """Train ``params`` of ``objective`` for ``spec.steps`` steps.

    ``next_args(step)`` returns the objective's positional arguments for one step. Checkpoints (rank 0)
    go to ``ckpt_dir`` every ``ckpt_every`` steps and at the end; ``restore`` (tensors of a checkpoint
    of this stage) resumes the optimizer and EMA at ``start_step`` (``start_elapsed`` seconds in). The wall clock (``spec.minutes``)
    is read at log steps only, averaged over processes, so every process sees the same learning rate
    and stops at the same step. ``finalise(ema)`` runs at the end,
    before the last checkpoint (e.g. to copy the EMA into the weights). Returns the number of steps
    the stage ran, counting those before ``start_step``.
    """
    model = rt.wrap(objective)
    names = list(params)
    plist = [params[n] for n in names]
    opt = torch.optim.AdamW(plist, lr=spec.lr, betas=(0.9, 0.99), weight_decay=spec.weight_decay)
    ema = {n: p.detach().clone().float() for n, p in params.items()}
    if restore is not None:
        restore_optimizer(opt, restore, restore_groups or opt.state_dict()["param_groups"])
        for n in names:
            if f"ema.{n}" in restore:
                ema[n].copy_(restore[f"ema.{n}"])
    bar = tqdm(total=spec.steps, initial=start_step, desc=spec.name, disable=not (progress and rt.is_main))
    t0 = time.perf_counter()
    t_log, tiles = t0, 0
    losses: list[torch.Tensor] = []
    n_run = start_step  # steps of this stage done so far, counting those before start_step
    elapsed = t_prev = start_elapsed
    for step in range(start_step, spec.steps):
        n_run = step + 1
        for group in opt.param_groups:
            group["lr"] = spec.lr_at(step, elapsed)
        with rt.autocast():
            loss, parts = model(*next_args(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plist, spec.grad_clip)
        opt.step()
        decay = min(spec.ema_decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            torch._foreach_lerp_([ema[n] for n in names], [p.detach().float() for p in plist], 1.0 - decay)
        losses.append(loss.detach())
        tiles += batch_size * rt.world_size
        bar.update(1)
        last = step + 1 == spec.steps
        if (step + 1) % log_every == 0 or last:
            mean_loss = rt.all_mean(float(torch.stack(losses).float().mean()))
            now = time.perf_counter()
            elapsed = rt.all_mean(t_prev + now - t0)
            row = {
                "stage": spec.name, "step": step + 1, "loss": mean_loss, "lr": spec.lr_at(step, elapsed),
                "tiles_per_s": tiles / max(now - t_log, 1e-9), "elapsed_s": elapsed,
                **{k: float(v) for k, v in parts.items()},
            }
            if eval_fn is not None and ((step + 1) % eval_every == 0 or last):
                row["val_loss"] = eval_fn()
            if rt.is_main:
                log.write(row)
                bar.set_postfix(loss=f"{mean_loss:.4f}")
            losses, t_log, tiles = [], time.perf_counter(), 0
            if spec.progress(step + 1, elapsed) >= 1.0:
                break
        if rt.is_main and ckpt_every and (step + 1) % ckpt_every == 0 and not last:
            save_checkpoint(ckpt_dir, model=ckpt_model, ema=ema, opt=opt, stage=spec.name,
                            step=step + 1, extra=ckpt_extra | {"elapsed_s": t_prev + time.perf_counter() - t0})
    bar.close()
    if finalise is not None:
        finalise(ema)
    if rt.is_main:
        save_checkpoint(ckpt_dir, model=ckpt_model, ema=ema, opt=opt, stage=spec.name, step=n_run,
                        extra=ckpt_extra | {"stage_done": True, "elapsed_s": t_prev + time.perf_counter() - t0})
    return n_run
