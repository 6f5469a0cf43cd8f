"""``d2ar demo``: compress and reconstruct a real sample cube with the shipped prior, end to end.

Held-out dates (the last 20 %, never seen in training) of a sample cube go through
``compress -> Zarr store -> xr.open_dataset(engine="d2ar")``; the command prints the ratios and the
quality, and writes a before/after figure with NDVI maps.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xr_d2ar.cli.compress import add_cluster_options

__all__ = ["figure", "register", "run"]

DEFAULT_CUBE = "worldcereal_flanders_a_s2"


def _rgb(values: np.ndarray, idx: list[int], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(band, y, x)`` physical values -> ``(y, x, 3)`` true colour (bands ``idx``) in [0, 1]."""
    rgb = np.stack([values[i] for i in idx], axis=-1)
    return np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0)


def figure(
    original: xr.DataArray,
    reconstruction: xr.DataArray,
    path: str | Path,
    *,
    title: str,
    valid: xr.DataArray | None = None,
) -> int:
    """Before/after figure of the clearest date: true colour and NDVI, plus the NDVI difference.

    Parameters
    ----------
    original, reconstruction : xarray.DataArray
        Canonical ``(time, band, y, x)`` stored values (same shape).
    path : str or Path
        PNG to write.
    title : str
        Figure title.
    valid : xarray.DataArray, optional
        ``(time, y, x)`` clear-pixel mask; the date with most clear pixels is shown (else the one
        with most data).

    Returns
    -------
    int
        Index of the date shown.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xr_d2ar import metrics
    from xr_d2ar.datasets import to_reflectance

    ref = to_reflectance(original).values
    rec = to_reflectance(reconstruction).values
    clear = (
        np.isfinite(ref).sum(axis=(1, 2, 3))
        if valid is None
        else np.asarray(valid).sum(axis=(1, 2))
    )
    t = int(np.argmax(clear))
    wl = np.asarray(original["wavelength"].values, np.float64)
    red, nir = metrics.find_red_nir(wl, [str(b) for b in original["band"].values])
    rgb = [int(np.argmin(np.abs(wl - w))) for w in (665.0, 560.0, 490.0)]
    lo, hi = (np.nanpercentile(ref[t][rgb], q, axis=(1, 2)) for q in (2, 98))
    nd_ref, nd_rec = metrics.ndvi(ref[t], red, nir), metrics.ndvi(rec[t], red, nir)
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.8), constrained_layout=True)
    panels: list[tuple[Any, str, dict[str, Any]]] = [
        (_rgb(np.nan_to_num(ref[t]), rgb, lo, hi), "original (true colour)", {}),
        (_rgb(np.nan_to_num(rec[t]), rgb, lo, hi), "D2AR reconstruction", {}),
        (nd_ref, "NDVI original", {"cmap": "RdYlGn", "vmin": -0.2, "vmax": 1.0}),
        (nd_rec, "NDVI reconstruction", {"cmap": "RdYlGn", "vmin": -0.2, "vmax": 1.0}),
        (nd_rec - nd_ref, "NDVI difference", {"cmap": "RdBu", "vmin": -0.5, "vmax": 0.5}),
    ]
    for ax, (img, label, kw) in zip(axes, panels):
        im = ax.imshow(img, **kw)
        ax.set_title(label)
        ax.set_axis_off()
        if kw:
            fig.colorbar(im, ax=ax, shrink=0.8)
    date = str(original["time"].values[t])[:10]
    fig.suptitle(f"{title} - {date}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return t


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    p = subparsers.add_parser(
        "demo",
        help="compress + reconstruct a real sample cube with the shipped prior",
        description="Compress the held-out dates of a real sample cube with the shipped prior "
        "(as many tokens as meet --ratio on this cube, measured), store them in Zarr, reopen "
        "lazily, print ratio and quality, write a figure.",
    )
    p.add_argument(
        "--cube", default=DEFAULT_CUBE, help=f"sample cube name (default {DEFAULT_CUBE})"
    )
    p.add_argument("--ratio", type=float, default=1000.0, help="target ratio (default 1000)")
    p.add_argument("--out", default="d2ar-demo", help="output folder (default ./d2ar-demo)")
    p.add_argument("--zarr-format", type=int, choices=(2, 3), default=3)
    add_cluster_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and print what it measured."""
    import xr_d2ar.accessor  # noqa: F401  (registers .d2ar)
    from xr_d2ar import datasets, metrics, parallel
    from xr_d2ar.backend import open_dataset
    from xr_d2ar.cli.compress import cluster_kwargs, size_line

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with datasets.open(args.cube) as lazy:
        cube = lazy.load()
    _, held_out = datasets.split_time(cube)
    which = "held-out dates"
    if held_out.sizes["time"] == 0:  # a single-date cube: the prior saw it in training
        held_out, which = cube, "dates seen in training"
    start = time.perf_counter()
    tokens = held_out.d2ar.compress(
        ratio=args.ratio, exact_ratio=True, scheduler=args.scheduler, resources=args.resources
    )
    store_path = out / f"{args.cube}.d2ar.zarr"
    sizes = tokens.d2ar.to_zarr(
        store_path, zarr_format=args.zarr_format, mode="w", **cluster_kwargs(args)
    )
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    (rec,) = parallel.compute(open_dataset(store_path, chunks={}), **cluster_kwargs(args))
    decode_s = time.perf_counter() - start
    scores = metrics.evaluate(held_out["reflectance"], rec["reflectance"], classify=False)
    layout = tokens.d2ar.layout()
    fig_path = out / f"{args.cube}.png"
    shown = figure(
        held_out["reflectance"],
        rec["reflectance"],
        fig_path,
        title=f"{args.cube}, {sizes.token_ratio:,.0f}x (tokens), prior {layout.model_name}",
        valid=held_out.get("valid"),
    )
    n_t = held_out.sizes["time"]
    print(
        f"cube     {args.cube}: {n_t} {which} x {held_out.sizes['band']} bands x "
        f"{held_out.sizes['y']} x {held_out.sizes['x']} px, prior {layout.model_name} "
        f"({layout.n_tokens} tokens per {layout.tile_size} px tile)"
    )
    print(
        f"stored   {store_path} (encode + write {encode_s:.1f} s, "
        f"lazy open + decode {decode_s:.1f} s)"
    )
    print(f"ratio    {size_line(sizes)}")
    ndvi = "n/a" if scores["ndvi_mae"] is None else f"{scores['ndvi_mae']:.3f}"
    print(
        f"quality  PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.3f}, spectral angle "
        f"{scores['spectral_angle_deg']:.2f} deg, NDVI MAE {ndvi} ({which})"
    )
    print(f"figure   {fig_path} (date {str(held_out['time'].values[shown])[:10]})")
    return 0
