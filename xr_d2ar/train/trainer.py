"""``train()``: cubes in, a prior out (``<out>/<name>.safetensors`` + ``.json``), resumable.

Stages, in order: (1) EQ-VAE; (2) control-token encoder + flow prior on the frozen VAE's latent;
(3) token model (frequency tables) from the tokens of the training tiles. Each cube is split by time
(:func:`xr_d2ar.datasets.split_time`): the last ``holdout`` fraction of its dates never enters
training and gives the validation losses in the metrics log.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from xr_d2ar._options import OPTIONS
from xr_d2ar.errors import CubeValidationError
from xr_d2ar.model.checkpoint import read_prior, save_prior
from xr_d2ar.model.config import ModelConfig, preset
from xr_d2ar.model.net import D2arNet
from xr_d2ar.model.normalise import fit_stats
from xr_d2ar.model.token_model import cross_entropy_bits, fit_token_model
from xr_d2ar.train.checkpoint import load_checkpoint
from xr_d2ar.train.data import CubeSource, TileBank
from xr_d2ar.train.loop import MetricsLog, StageSpec, run_stage
from xr_d2ar.train.objectives import N_EQ_TRANSFORMS, FlowObjective, VaeObjective
from xr_d2ar.train.runtime import Runtime, setup_runtime, teardown_runtime

__all__ = ["TrainConfig", "split_sources", "train", "train_sources"]


@dataclass(frozen=True)
class TrainConfig:
    """Training options (all JSON-ready; recorded in the prior's config).

    Attributes
    ----------
    preset : str
        Architecture preset (see :data:`xr_d2ar.model.PRESETS`).
    name : str
        Prior name (file stem).
    vae_steps, flow_steps : int
        Optimizer steps of stages 1 and 2.
    batch_size : int
        Tiles per step and process.
    vae_lr, flow_lr : float
        Peak learning rates.
    warmup : int
        Warmup steps of each stage.
    p_eq : float
        Probability of an EQ-VAE transform per VAE step.
    kl_weight : float
        Weight of the VAE's KL term.
    cloud_weight : float
        Loss weight of non-clear pixels (clouds, shadows) that hold data; nodata weighs 0.
    tiles_per_area : float
        Random tiles cut per image and per ``T * T`` pixels.
    capacity : int
        Tiles held in the device bank; ``refresh_every`` > 0 streams new images in every so many steps.
    holdout : float
        Fraction of each cube's last dates held out (0 = none).
    seed : int
    ckpt_every, log_every, eval_every : int
    vae_minutes, flow_minutes : float
        Wall-clock budget of each stage (0 = none): the LR schedule runs over whichever of steps and
        minutes runs out first, and the stage stops there.
    flow_weight_decay : float
        AdamW weight decay of stage 2.
    init_from : str
        Path of an existing prior: its weights, normalisation and sensors are taken and stage 1 (VAE)
        is skipped, so only the token encoder + flow (and the token model) are retrained.
    """

    preset: str = "default"
    name: str = "d2ar-prior"
    vae_steps: int = 3000
    flow_steps: int = 4000
    batch_size: int = 128
    vae_lr: float = 1e-3
    flow_lr: float = 4e-4
    warmup: int = 100
    p_eq: float = 0.5
    kl_weight: float = 1e-4
    cloud_weight: float = 0.1
    tiles_per_area: float = 4.0
    capacity: int = 20000
    refresh_every: int = 0
    holdout: float = 0.2
    seed: int = 0
    ckpt_every: int = 500
    log_every: int = 20
    eval_every: int = 200
    vae_minutes: float = 0.0
    flow_minutes: float = 0.0
    flow_weight_decay: float = 0.01
    init_from: str = ""


def split_sources(
    cubes: xr.Dataset | Sequence[xr.Dataset] | Mapping[str, xr.Dataset], *, tile: int, holdout: float
) -> tuple[list[CubeSource], list[CubeSource]]:
    """Canonical cubes -> (training sources, held-out sources) split by time."""
    from xr_d2ar.datasets import split_time

    if isinstance(cubes, xr.Dataset):
        cubes = [cubes]
    if isinstance(cubes, Mapping):
        named = list(cubes.items())
    else:
        named = [(str(ds.attrs.get("name", f"cube{i}")), ds) for i, ds in enumerate(cubes)]
    if not named:
        raise CubeValidationError("train() needs at least one cube. Got none.")
    train, held = [], []
    for name, ds in named:
        if not isinstance(ds, xr.Dataset):
            raise CubeValidationError(
                f"Cube {name!r} must be an xarray.Dataset in canonical form. Got {type(ds).__name__} "
                "instead. Use xr_d2ar.datasets.open_cube(...)."
            )
        if holdout > 0:
            tr, ho = split_time(ds, holdout=holdout)
        else:
            tr, ho = ds, ds.isel(time=slice(0, 0))
        train.append(CubeSource.from_dataset(tr, name=name, tile=tile))
        if ho.sizes["time"]:
            held.append(CubeSource.from_dataset(ho, name=name, tile=tile))
    return train, held


def _fit_normalisation(sources: Sequence[CubeSource], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    samples: dict[str, dict[float, list[np.ndarray]]] = {}
    reflectance = set()
    for src in sources:
        for i in np.linspace(0, src.n_times - 1, min(src.n_times, 12)).round().astype(int):
            phys, _ = src.image(int(i))
            wl, _ = src.band_meta(int(i))
            sensor = str(src.meta["sensor"][i])
            if src.meta["units"] != "DN":
                reflectance.add(sensor)
            for b, w in enumerate(wl):
                # every data pixel, clouds included: stats of clear pixels alone put bright clouds
                # 50-70 std out, where they dominate the squared losses
                v = phys[b][np.isfinite(phys[b])]
                if v.size > 20000:
                    v = rng.choice(v, 20000, replace=False)
                samples.setdefault(sensor, {}).setdefault(round(float(w), 1), []).append(v)
    return fit_stats(samples, reflectance_sensors=reflectance)


def _region(sources: Sequence[CubeSource], held: Sequence[CubeSource]) -> list[dict[str, Any]]:
    held_by = {h.name: h for h in held}
    out = []
    for src in sources:
        m = src.meta
        entry = {
            "cube": src.name,
            "lat": [float(m["lat"].min()), float(m["lat"].max())],
            "lon": [float(m["lon"].min()), float(m["lon"].max())],
            "dates": [str(m["time"].min())[:10], str(m["time"].max())[:10]],
            "n_dates": int(src.n_times),
            "sensors": sorted(set(map(str, m["sensor"]))),
            "units": m["units"],
        }
        if src.name in held_by:
            h = held_by[src.name].meta["time"]
            entry["held_out_dates"] = [str(h.min())[:10], str(h.max())[:10]]
        out.append(entry)
    return out


def _bands(sources: Sequence[CubeSource]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for src in sources:
        for i in range(src.n_times):
            wl, bw = src.band_meta(i)
            sensor = str(src.meta["sensor"][i])
            for name, w, b in zip(src.meta["band"], wl, bw):
                seen[(sensor, str(name))] = {
                    "sensor": sensor, "band": str(name), "wavelength": float(w),
                    "bandwidth": float(b) if np.isfinite(b) else None,
                }
    return [seen[k] for k in sorted(seen)]


def _step_rng(seed: int, rank: int, what: str, step: int) -> np.random.Generator:
    """The generator of one step's draws of one kind: a function of (run seed, process rank,
    kind, step) only, so a resumed run draws what the uninterrupted one would have drawn."""
    return np.random.default_rng([seed, rank, zlib.crc32(what.encode()), step])


def _step_draws(seed: int, rank: int, stage: str, step: int) -> np.random.Generator:
    """Seed torch (CPU and every GPU: noise, flow times, token dropout, dihedral draws) for
    ``step`` of ``stage`` and return the numpy generator of the step's tile and EQ draws."""
    g = _step_rng(seed, rank, stage, step)
    torch.manual_seed(int(g.integers(2**63 - 1)))
    return g


def _seeded_loss(objective: torch.nn.Module, args: tuple, rt: Runtime, seed: int) -> float:
    devices = [rt.device] if rt.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad(), rt.autocast():
        torch.manual_seed(seed)
        return float(objective(*args)[0])


def _batch_args(bank: TileBank, index: np.ndarray, *, flow: bool) -> tuple:
    b = bank.batch(index)
    base = (b.x, b.data, b.weight, b.wavelength, b.bandwidth)
    return base + ((b.geo, b.date, b.sensor) if flow else ())


def _latent_stats(net: D2arNet, bank: TileBank, rt: Runtime, batch: int) -> None:
    """Set the latent normalisation buffers from the VAE means of (up to 4096) bank tiles."""
    sums = torch.zeros(3, net.cfg.latent_channels, dtype=torch.float64, device=rt.device)
    with torch.no_grad(), rt.autocast():
        for s in range(0, min(len(bank), 4096), batch):
            b = bank.batch(np.arange(s, min(s + batch, len(bank), 4096)))
            emb = net.vae.embed_bands(b.wavelength, b.bandwidth)
            mean = net.vae.encode(b.x, b.data, emb)[0].double()
            sums += torch.stack([
                torch.full_like(sums[0], mean[:, 0].numel()), mean.sum((0, 2, 3)), (mean**2).sum((0, 2, 3))
            ])
    if rt.world_size > 1:
        torch.distributed.all_reduce(sums)
    n = sums[0]
    mu = sums[1] / n
    net.latent_mean.copy_(mu.float())
    net.latent_std.copy_((sums[2] / n - mu**2).clamp(min=1e-8).sqrt().float())


def _copy_ema(params: dict[str, torch.nn.Parameter], ema: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(ema[n])


def _tokens_of_bank(net: D2arNet, bank: TileBank, rt: Runtime, batch: int) -> np.ndarray:
    out = []
    with torch.no_grad(), rt.autocast():
        for b in bank.all_batches(batch):
            emb = net.vae.embed_bands(b.wavelength, b.bandwidth)
            out.append(net.encode(b.x, b.data, emb).cpu().numpy())
    return np.concatenate(out)


#: TrainConfig fields a resumed run takes from the caller (budgets and logging); the others are
#: the run's own (they shape the model, the data or the optimiser state).
_RESUME_OVERRIDABLE = (
    "vae_steps", "flow_steps", "vae_minutes", "flow_minutes", "log_every", "eval_every", "ckpt_every",
)


def _resumed_config(saved: dict[str, Any], given: TrainConfig) -> TrainConfig:
    """The saved run's config, with the caller's budgets; other differences are named in a warning."""
    merged = dict(saved, **{k: getattr(given, k) for k in _RESUME_OVERRIDABLE})
    ignored = {
        k: (v, saved[k]) for k, v in asdict(given).items()
        if k not in _RESUME_OVERRIDABLE and k in saved and v != saved[k]
    }
    if ignored:
        listed = ", ".join(f"{k}={run!r} (given {new!r})" for k, (new, run) in sorted(ignored.items()))
        warnings.warn(
            f"Resuming keeps the run's own settings: {listed}. Only step/minute budgets and "
            "logging can change on resume; start a new --out folder to change the others.",
            UserWarning,
            stacklevel=3,
        )
    return TrainConfig(**merged)


def train_sources(
    sources: Sequence[CubeSource],
    held: Sequence[CubeSource],
    *,
    out: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    device: str = "auto",
    amp: bool | None = None,
    compile: bool | None = None,
    resume: bool = True,
    progress: bool | None = None,
) -> Path | None:
    """Train a prior on prepared sources (see :func:`train`); returns the prior's weights path on rank 0."""
    rt = setup_runtime(device, amp=amp, compile=compile)
    try:
        return _train(sources, held, Path(out), config, rt, resume, OPTIONS["progress"] if progress is None else progress)
    finally:
        teardown_runtime(rt)


def _train(
    sources: Sequence[CubeSource],
    held: Sequence[CubeSource],
    out: Path,
    tc: TrainConfig,
    rt: Runtime,
    resume: bool,
    progress: bool,
) -> Path | None:
    t_start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    cfg: ModelConfig = preset(tc.preset)
    ckpt = load_checkpoint(out / "checkpoint") if resume else None
    run_path = out / "run.json"
    init = read_prior(tc.init_from) if tc.init_from and ckpt is None else None
    if init is not None:
        cfg = ModelConfig.from_dict(init[2]["architecture"])
    if ckpt is not None and run_path.is_file():
        run = json.loads(run_path.read_text())
        tc = _resumed_config(run["train_config"], tc)
        cfg = ModelConfig.from_dict(run["architecture"])
    else:
        sensors = ["unknown"] + sorted({str(s) for src in sources for s in src.meta["sensor"]})
        if len(sensors) > cfg.n_sensors:
            raise CubeValidationError(
                f"The cubes name {len(sensors) - 1} sensors but the preset holds {cfg.n_sensors - 1}. "
                "Use a preset with a larger n_sensors or fewer sensors."
            )
        run = {
            "train_config": asdict(tc), "architecture": cfg.to_dict(), "sensors": sensors,
            "normalisation": _fit_normalisation(sources, tc.seed) if init is None else init[2]["normalisation"],
            "bands": _bands(sources), "region": _region(sources, held),
        }
        if init is not None:
            unknown = sorted(set(sensors) - set(init[2]["sensors"]))
            if unknown:
                raise CubeValidationError(
                    f"init_from prior {tc.init_from} does not know sensors {unknown}. Train from scratch "
                    "(no init_from) to add sensors."
                )
            run["sensors"] = init[2]["sensors"]
        if rt.is_main:
            run_path.write_text(json.dumps(run, indent=1))
    torch.manual_seed(tc.seed + rt.rank)
    net = D2arNet(cfg).to(rt.device)
    bank_kw = {"tile": cfg.tile_size, "stats": run["normalisation"], "sensors": run["sensors"],
               "geo_octaves": cfg.geo_octaves, "cloud_weight": tc.cloud_weight, "device": rt.device}
    bank = TileBank(sources, tiles_per_area=tc.tiles_per_area, capacity=tc.capacity,
                    seed=tc.seed + 1000 * rt.rank, **bank_kw)
    if not held:
        warnings.warn(
            "No held-out dates (every cube has a single date or holdout=0): val_loss in metrics.csv "
            "is measured on training tiles, so it does not show over-fitting.",
            UserWarning,
            stacklevel=2,
        )
    val_bank = TileBank(held or sources, tiles_per_area=1.0, capacity=2 * tc.batch_size, seed=12345, **bank_kw)
    val_index = val_bank.sample(min(tc.batch_size, len(val_bank)))
    log = MetricsLog(out, enabled=rt.is_main)
    if ckpt is None and rt.is_main:
        log.path.unlink(missing_ok=True)  # a fresh run starts a fresh log
    extra = {"run": str(run_path)}
    stage_done = {"vae": init is not None, "flow": False}
    if init is not None:
        net.load_state_dict(init[0])
    start = {"vae": 0, "flow": 0}
    elapsed = {"vae": 0.0, "flow": 0.0}
    restore = None
    if ckpt is not None:
        tensors, meta = ckpt
        net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        if meta["stage"] == "flow":
            stage_done["vae"] = True
        stage_done[meta["stage"]] = bool(meta.get("stage_done"))
        start[meta["stage"]] = int(meta["step"])
        elapsed[meta["stage"]] = float(meta.get("elapsed_s", 0.0))
        restore = (meta["stage"], tensors, meta["param_groups"])
    cf = rt.compile_fn()

    def refresh(stage: str, step: int) -> None:
        if tc.refresh_every and step and step % tc.refresh_every == 0:
            bank.refresh(rng=_step_rng(tc.seed, rt.rank, f"refresh-{stage}", step))

    # a resumed run first brings the bank to where the interrupted one was at its checkpoint
    ran = dict(start)
    if ckpt is not None and ckpt[1]["stage"] == "flow":
        if "vae_steps_run" in ckpt[1]:
            ran["vae"] = int(ckpt[1]["vae_steps_run"])
        elif tc.init_from:
            ran["vae"] = 0  # the VAE came from init_from: no VAE step ran, no refresh to replay
        else:
            ran["vae"] = tc.vae_steps
            if tc.refresh_every:  # without refreshes there is nothing to replay
                warnings.warn(
                    "the checkpoint predates xr_d2ar's record of VAE steps run; assuming the full "
                    f"{tc.vae_steps}: if the VAE stage stopped early on its time budget, the resumed run's "
                    "tiles differ from the uninterrupted run's (training is still correct).",
                    UserWarning,
                    stacklevel=2,
                )
    for stage, upto in ran.items():
        for step in range(1, upto):
            refresh(stage, step)

    # ---- stage 1: EQ-VAE
    vae_obj = VaeObjective(net, kl_weight=tc.kl_weight, compile_fn=cf)
    if not stage_done["vae"]:
        def vae_args(step: int) -> tuple:
            refresh("vae", step)
            g = _step_draws(tc.seed, rt.rank, "vae", step)
            eq = int(g.integers(1, N_EQ_TRANSFORMS)) if g.random() < tc.p_eq else 0
            return _batch_args(bank, bank.sample(tc.batch_size, g), flow=False) + (eq,)

        val_args = _batch_args(val_bank, val_index, flow=False) + (0,)
        spec = StageSpec("vae", tc.vae_steps, tc.vae_lr, warmup=tc.warmup, minutes=tc.vae_minutes)
        params = {n: p for n, p in net.vae.named_parameters()}
        r = restore if restore and restore[0] == "vae" else None

        def finish_vae(ema: dict[str, torch.Tensor]) -> None:
            _copy_ema(params, ema)
            _latent_stats(net, bank, rt, tc.batch_size)

        ran["vae"] = run_stage(
            spec, vae_obj, params, vae_args, rt, log=log, ckpt_dir=out / "checkpoint", ckpt_model=net,
            ckpt_extra=extra, start_step=start["vae"], start_elapsed=elapsed["vae"], restore=r[1] if r else None,
            restore_groups=r[2] if r else None, ckpt_every=tc.ckpt_every, log_every=tc.log_every,
            eval_fn=lambda: _seeded_loss(vae_obj, val_args, rt, 0), eval_every=tc.eval_every,
            batch_size=tc.batch_size, progress=progress, finalise=finish_vae,
        )
    # ---- stage 2: token encoder + flow prior
    net.vae.requires_grad_(False)
    net.vae.eval()
    flow_obj = FlowObjective(net, compile_fn=cf)

    def flow_args(step: int) -> tuple:
        refresh("flow", step)
        g = _step_draws(tc.seed, rt.rank, "flow", step)
        return _batch_args(bank, bank.sample(tc.batch_size, g), flow=True)

    extra["vae_steps_run"] = ran["vae"]  # for the bank's replay when the flow stage resumes
    val_flow = _batch_args(val_bank, val_index, flow=True)
    params = {f"encoder.{n}": p for n, p in net.encoder.named_parameters()}
    params |= {f"flow.{n}": p for n, p in net.flow.named_parameters()}
    if not stage_done["flow"]:
        r = restore if restore and restore[0] == "flow" else None
        run_stage(
            StageSpec("flow", tc.flow_steps, tc.flow_lr, warmup=tc.warmup, minutes=tc.flow_minutes,
                      weight_decay=tc.flow_weight_decay), flow_obj, params, flow_args, rt,
            log=log, ckpt_dir=out / "checkpoint", ckpt_model=net, ckpt_extra=extra,
            start_step=start["flow"], start_elapsed=elapsed["flow"], restore=r[1] if r else None, restore_groups=r[2] if r else None,
            ckpt_every=tc.ckpt_every, log_every=tc.log_every,
            eval_fn=lambda: _seeded_loss(flow_obj, val_flow, rt, 0), eval_every=tc.eval_every,
            batch_size=tc.batch_size, progress=progress,
            finalise=lambda ema: _copy_ema(params, ema),
        )
    if not rt.is_main:
        return None
    # ---- stage 3: token model
    net.eval()
    tokens = _tokens_of_bank(net, bank, rt, tc.batch_size)
    freq, bits = fit_token_model(tokens, cfg.codebook_size, seed=tc.seed)
    token_bits = {"training_rows_total": float(bits.sum())}
    if held:  # what tokens of new dates cost (more than rows of the training dates): the rate to plan with
        held_bank = TileBank(held, tiles_per_area=tc.tiles_per_area, capacity=tc.capacity, seed=tc.seed + 2, **bank_kw)
        bits = cross_entropy_bits(freq, _tokens_of_bank(net, held_bank, rt, tc.batch_size))
        token_bits |= {"source": f"held-out dates ({len(held_bank)} tiles)", "held_out_total": float(bits.sum())}
    final = {r["stage"]: r for r in log.rows if r.get("step")}
    config = {
        "name": tc.name,
        "architecture": cfg.to_dict(),
        "sensors": run["sensors"],
        "bands": run["bands"],
        "normalisation": run["normalisation"],
        "token_bits": [float(b) for b in bits],
        "decode": {"steps": 8, "solver": "euler", "temperature": 1.0},
        "region": run["region"],
        "metrics": {
            "final": {s: {k: v for k, v in row.items() if isinstance(v, (int, float))} for s, row in final.items()},
            "val_loss": {s: _seeded_loss(o, a, rt, 0) for s, o, a in (
                ("vae", vae_obj, _batch_args(val_bank, val_index, flow=False) + (0,)),
                ("flow", flow_obj, val_flow))},
            "token_bits": token_bits,
            "n_train_tiles": len(bank),
        },
        "training": {
            "config": asdict(tc),
            "command": " ".join(sys.argv),
            "device": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else platform.processor() or platform.machine(),
            "world_size": rt.world_size,
            "amp_bf16": rt.amp,
            "compile": rt.compile,
            "torch": torch.__version__,
            "wall_s": time.time() - t_start,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    }
    param_names = {n for n, _ in net.named_parameters()}
    weights, _ = save_prior(out / tc.name, net.state_dict(), freq, config, param_names=param_names)
    return weights


def train(
    cubes: xr.Dataset | Sequence[xr.Dataset] | Mapping[str, xr.Dataset],
    *,
    out: str | os.PathLike,
    config: TrainConfig | None = None,
    device: str = "auto",
    resume: bool = True,
    progress: bool | None = None,
    **options: Any,
) -> object:
    """Train a D2AR prior on canonical cubes and return it loaded (:class:`~xr_d2ar.model.D2arModel`).

    Parameters
    ----------
    cubes : xarray.Dataset, list of them, or dict name -> Dataset
        Canonical cubes (see :mod:`xr_d2ar.datasets`); read lazily, image by image.
    out : path
        Run folder: ``run.json``, ``metrics.csv``, ``checkpoint/`` and the prior files.
    config : TrainConfig, optional
        Options; keyword ``options`` override single fields (e.g. ``vae_steps=500``).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``; under ``torchrun`` each process takes its local GPU.
    resume : bool
        Continue from ``out/checkpoint`` when present.
    progress : bool, optional
        Progress bars (default: the ``progress`` option).

    Returns
    -------
    D2arModel
        The trained prior (on rank 0; None on other ranks of a distributed run).
    """
    tc = replace(config or TrainConfig(), **options)
    cfg = preset(tc.preset)
    sources, held = split_sources(cubes, tile=cfg.tile_size, holdout=tc.holdout)
    weights = train_sources(sources, held, out=out, config=tc, device=device, resume=resume, progress=progress)
    if weights is None:
        return None
    from xr_d2ar.model.api import load_model

    return load_model(weights, device="cpu" if device == "cpu" else "auto")
