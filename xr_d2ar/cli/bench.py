"""``d2ar bench``: classical codecs and trivial references at matched ratios on one cube.

Example::

    d2ar bench --data worldcereal_flanders_a_s2 --ratios 10,100,1000,10000 --out results/
    d2ar bench --data my_cube.nc --codecs sz3,jpeg2k,image-mean --crop 256
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def _ratios(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v <= 1 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated ratios above 1, e.g. 10,100,1000. Got {text!r} instead."
        )
    return values


def _names(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated codec names. Got {text!r}.")
    return names


def register(subparsers: Any) -> None:
    """Add the ``bench`` sub-command to the ``d2ar`` parser."""
    from xr_d2ar.baselines import codec_names

    p = subparsers.add_parser(
        "bench",
        help="compare codecs at matched compression ratios (JSON, Markdown, PNG)",
        description=(
            "Drive each codec to each target ratio (bisection on its own knob), score the "
            "reconstructions (PSNR, SSIM, spectral angle, NDVI error, max error, classification "
            "utility) and write <cube>.json, <cube>.md and <cube>.png. Multi-date cubes are "
            "benched on their held-out dates with the earlier dates as history."
        ),
    )
    p.add_argument(
        "--data",
        required=True,
        help="a sample cube name (xr_d2ar.datasets.available()) or a GeoTIFF/NetCDF/Zarr path",
    )
    p.add_argument(
        "--ratios", type=_ratios, default=[10.0, 100.0, 1000.0, 10000.0],
        help="target compression ratios, comma-separated (default 10,100,1000,10000)",
    )
    p.add_argument(
        "--codecs", type=_names, default=None,
        help=f"comma-separated codecs (default: every available one of {','.join(codec_names())})",
    )
    p.add_argument("--out", default=".", help="folder for the reports (default: current folder)")
    p.add_argument(
        "--holdout", type=float, default=0.2,
        help="fraction of the last dates benched; the rest is history (default 0.2)",
    )
    p.add_argument(
        "--crop", type=int, default=None,
        help="bench only the central CROP x CROP pixels (for large scenes)",
    )
    p.add_argument(
        "--no-classify", action="store_true", help="skip the classification utility (faster)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the metric pixel sampling")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the bench for ``args`` and write the reports; returns the exit code."""
    from xr_d2ar import bench
    from xr_d2ar.baselines import get_codec
    from xr_d2ar.cli.compress import cube_name, open_input

    codecs = [get_codec(n) for n in args.codecs] if args.codecs else None  # fail before loading
    ds, name = open_input(args.data), cube_name(args.data)
    cube, history, subset = bench.bench_split(ds, holdout=args.holdout, crop=args.crop)
    result = bench.run_bench(
        cube, codecs=codecs, ratios=args.ratios, history=history, name=name, subset=subset,
        classify=not args.no_classify, seed=args.seed,
    )
    paths = bench.write_report(result, args.out)
    print(f"{name}: {subset}")
    for best in result.best_by_ratio():
        if best["codec"] is None:
            print(f"  {best['target_ratio']:>8g}x  no classical codec reaches it")
        else:
            print(
                f"  {best['target_ratio']:>8g}x  best {best['codec']:<7} at {best['ratio']:.4g}x: "
                f"PSNR {best['psnr']:.2f} dB, SSIM {best['ssim']:.3f}"
            )
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0
