"""``d2ar train``: train a D2AR prior on cubes (sample-cube names, NetCDF/Zarr/GeoTIFF paths or a tile pack).

Examples::

    d2ar train all --out runs/prior                       # every sample cube, one GPU or the CPU
    torchrun --nproc_per_node=2 -m xr_d2ar.train all --out runs/prior   # two GPUs (DDP)
    d2ar train all --out runs/prior                       # again: resumes from runs/prior/checkpoint
    d2ar train all --make-pack .gpu/pack                  # write a tile pack for a machine without NetCDF
    d2ar train --pack .gpu/pack --out runs/prior          # train from a tile pack
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

__all__ = ["register"]

_OPTIONS = ("preset", "name", "vae_steps", "flow_steps", "batch_size", "vae_lr", "flow_lr", "holdout",
            "capacity", "tiles_per_area", "seed", "ckpt_every", "vae_minutes", "flow_minutes", "cloud_weight",
            "flow_weight_decay", "init_from", "refresh_every")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    from xr_d2ar.train.trainer import TrainConfig

    p = subparsers.add_parser("train", help="train a prior (VAE, token encoder + flow, token model)",
                              description=__doc__.replace("``", "").replace("::", ":"),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cubes", nargs="*", help="sample-cube names, 'all', or paths of canonical cubes")
    p.add_argument("--out", help="run folder (prior files, metrics.csv, checkpoint/)")
    p.add_argument("--pack", help="train from a tile pack folder (train/ and holdout/) instead of cubes")
    p.add_argument("--make-pack", metavar="DIR", help="only write a tile pack of the cubes to DIR")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (torchrun: each rank its GPU)")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on GPU")
    p.add_argument("--no-compile", action="store_true", help="no torch.compile on GPU")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    defaults = TrainConfig()
    types = {f.name: f.type for f in fields(TrainConfig)}
    from xr_d2ar.model.config import PRESETS

    choices = {"preset": sorted(PRESETS)}
    for name in _OPTIONS:
        kind = {"int": int, "float": float, "str": str}[str(types[name])]
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name),
                       choices=choices.get(name), help=f"(default {getattr(defaults, name)})")
    p.set_defaults(func=run)


def _open_cubes(specs: list[str]) -> dict:
    from xr_d2ar import datasets
    from xr_d2ar.cli.compress import cube_name, open_input

    names = datasets.available() if specs == ["all"] else specs
    return {cube_name(spec): open_input(spec) for spec in names}


def run(args: argparse.Namespace) -> int:
    """Execute ``d2ar train``."""
    from xr_d2ar.errors import CubeValidationError
    from xr_d2ar.model.config import preset
    from xr_d2ar.train.data import load_pack, pack
    from xr_d2ar.train.trainer import TrainConfig, split_sources, train_sources

    config = TrainConfig(**{name: getattr(args, name) for name in _OPTIONS})
    tile = preset(config.preset).tile_size
    if args.pack:
        folder = Path(args.pack)
        sources = load_pack(folder / "train")
        held = load_pack(folder / "holdout") if any((folder / "holdout").glob("*.npz")) else []
    else:
        if not args.cubes:
            raise CubeValidationError("Name the cubes to train on ('all' for every sample cube) or pass --pack DIR.")
        sources, held = split_sources(_open_cubes(args.cubes), tile=tile, holdout=config.holdout)
    if args.make_pack:
        pack(sources, Path(args.make_pack) / "train")
        pack(held, Path(args.make_pack) / "holdout")
        print(f"wrote tile pack of {len(sources)} cubes to {args.make_pack}")
        return 0
    if not args.out:
        raise CubeValidationError("d2ar train needs --out DIR (the run folder). Got none.")
    weights = train_sources(
        sources, held, out=args.out, config=config, device=args.device,
        amp=False if args.no_amp else None, compile=False if args.no_compile else None,
        resume=not args.no_resume, progress=not args.no_progress,
    )
    if weights is not None:
        print(f"prior written: {weights} (+ {weights.with_suffix('.json').name})")
    return 0
