"""``d2ar compress IN OUT``: compress a cube into a Zarr token store, locally or on a cluster."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xr_d2ar import datasets
from xr_d2ar.errors import CubeValidationError, DataNotFoundError

__all__ = [
    "add_cluster_options",
    "cluster_kwargs",
    "cube_name",
    "open_input",
    "parse_mapping",
    "register",
    "run",
    "size_line",
]


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``--scheduler``, ``--resources`` and ``--no-progress`` (shared by compress/reconstruct)."""
    parser.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="Dask scheduler: an address such as tcp://10.0.0.1:8786, or threads / "
        "processes / synchronous (default: threads)",
    )
    parser.add_argument(
        "--resources",
        metavar="NAME=N[,...]",
        type=_resources,
        help="worker resources every task needs, e.g. GPU=1 (with --scheduler)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_mapping(text: str, *, cast: type = int) -> dict[str, Any]:
    """``"a=1,b=2"`` -> ``{"a": 1, "b": 2}`` (an argparse ``type``: bad text is a usage error)."""
    out: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError(item)
            out[key.strip()] = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected name=value[,name=value] with {cast.__name__} values. "
                f"Got {text!r} instead."
            ) from None
    return out


def _chunks(text: str) -> dict[str, Any]:
    return parse_mapping(text, cast=int)


def _resources(text: str) -> dict[str, Any]:
    return parse_mapping(text, cast=float)


def cluster_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``scheduler``, ``resources`` and ``progress`` keyword arguments from the parsed options."""
    return {
        "scheduler": args.scheduler,
        "resources": args.resources,
        "progress": not args.no_progress,
    }


def _list(kind: type) -> Any:
    """argparse type: a comma-separated list of ``kind``."""

    def parse(text: str) -> list:
        try:
            return [kind(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__} values. Got {text!r} instead."
            ) from None

    return parse


def open_input(source: str, **describe: Any) -> xr.Dataset:
    """A cube from a path (NetCDF, GeoTIFF, Zarr) or a sample cube's name, in canonical form.

    Every sub-command that reads a cube takes it this way; ``describe`` (``crs``, ``sensor``,
    ``variable``, ``time``, ``wavelength``, ``bandwidth``) go to
    :func:`xr_d2ar.datasets.open_cube` for a file that lacks them.
    """
    if Path(source).exists():
        return datasets.open_cube(source, **describe)
    try:
        names = datasets.available()
    except DataNotFoundError:
        names = []
    if source in names:
        given = sorted(k for k, v in describe.items() if v is not None)
        if given:  # a sample cube is described already: silently ignoring these would mislead
            flags = ", ".join(f"--{k}" for k in given)
            verb = "describes a file that lacks it" if len(given) == 1 else (
                "describe a file that lacks them")
            raise CubeValidationError(
                f"{flags} {verb}, but {source!r} is a sample cube, "
                f"already described. Drop {flags}, or give the file's path "
                f"({datasets.data_dir() / source}.nc) to describe it yourself.",
            )
        return datasets.open(source)
    raise DataNotFoundError(
        f"No file, folder or sample cube named {source!r}. Got a path that does not exist. "
        "Pass a NetCDF/GeoTIFF/Zarr path or one of the sample cubes: "
        f"{', '.join(names) or 'none found (set XR_D2AR_DATA)'}.",
        name=source,
    )


def cube_name(source: str) -> str:
    """How a cube given as a path or a sample name is named in reports: the file stem or name."""
    return Path(source).stem if Path(source).exists() else source


def size_line(sizes: Any) -> str:
    """One line with both ratios, the bytes, and the prior's size beside them."""
    tokens = (
        f"{sizes.token_ratio:,.1f}x tokens only ({sizes.token_bytes:,} B)"
        if sizes.token_bytes
        else "no tokens stored (0 B: dates and places only, the prior's climatology)"
    )
    return (
        f"{tokens}, "
        f"{sizes.store_ratio:,.1f}x whole store ({sizes.store_bytes:,} B); source "
        f"{sizes.source_bytes:,} B; prior {sizes.model_bytes / 1e6:.1f} MB (not in the store)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compress`` sub-command."""
    p = subparsers.add_parser(
        "compress",
        help="compress a cube into a D2AR token store",
        description="Compress a cube (time, band, y, x) into control tokens stored in Zarr.",
    )
    p.add_argument("input", help="NetCDF / GeoTIFF / Zarr cube, or a sample cube name")
    p.add_argument("output", help="token store to write (a Zarr folder, e.g. cube.d2ar.zarr)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument(
        "--ratio", type=float, help="target ratio of source to token bytes (default 1000)"
    )
    rate.add_argument(
        "--tokens", type=int, help="tokens per tile instead of --ratio (0 = climatology)"
    )
    p.add_argument(
        "--exact-ratio",
        action="store_true",
        help="measure what the tokens cost on this cube and keep the most that meet --ratio "
        "(encodes on the local scheduler first; default: the token model's estimate)",
    )
    p.add_argument("--model", help="prior .safetensors/.json (default: the shipped prior)")
    p.add_argument("--zarr-format", type=int, choices=(2, 3), default=3)
    p.add_argument(
        "--chunks", metavar="DIM=N[,...]", type=_chunks, help="Dask chunks, e.g. time=4,y=512,x=512"
    )
    p.add_argument("--seed", type=int, default=0, help="decode noise seed (default 0)")
    p.add_argument("--steps", type=int, help="decode sampler steps (default: the prior's)")
    p.add_argument("--crs", help="CRS when the input has none, e.g. EPSG:32631")
    p.add_argument("--sensor", help="sensor name when the input has none, e.g. Sentinel-2A")
    p.add_argument("--variable", help="reflectance variable of the input, when ambiguous")
    p.add_argument("--time", type=_list(str), metavar="DATE[,...]",
                   help="observation date(s) when the input has none, one per image, e.g. 2023-06-01")
    p.add_argument("--wavelength", type=_list(float), metavar="NM[,...]",
                   help="band centre wavelengths (nm), one per band, when neither the input nor "
                   "the sensor's table names them")
    p.add_argument("--bandwidth", type=_list(float), metavar="NM[,...]",
                   help="band widths (nm), one per band, with --wavelength")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_cluster_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compress ``args.input`` into ``args.output`` and print the sizes."""
    import xr_d2ar.accessor  # noqa: F401  (registers .d2ar)

    if Path(args.output).exists() and not args.overwrite:
        print(
            f"d2ar compress: error: {args.output} exists. Pass --overwrite to replace it.",
            file=sys.stderr,
        )
        return 1
    start = time.perf_counter()
    describe = {k: getattr(args, k) for k in ("crs", "sensor", "variable", "time", "wavelength", "bandwidth")}
    with open_input(args.input, **{k: v for k, v in describe.items() if v is not None}) as cube:
        tokens = cube.d2ar.compress(
            args.model,
            ratio=args.ratio,
            tokens=args.tokens,
            seed=args.seed,
            steps=args.steps,
            chunks=args.chunks,
            exact_ratio=args.exact_ratio,
            **({"scheduler": args.scheduler, "resources": args.resources} if args.exact_ratio else {}),
        )
        sizes = tokens.d2ar.to_zarr(
            args.output, zarr_format=args.zarr_format, mode="w", **cluster_kwargs(args)
        )
    layout = tokens.d2ar.layout()
    shape = " x ".join(str(n) for n in layout.shape)
    print(
        f"wrote {args.output} (zarr v{args.zarr_format}) in {time.perf_counter() - start:.1f} s: "
        f"{shape} {np.dtype(layout.dtype).name}, "
        f"{layout.n_tokens} tokens/tile of {layout.tile_size} px, "
        f"prior {layout.model_name} ({layout.model_sha256[:12]})"
    )
    if sizes is not None:
        print(f"ratio {size_line(sizes)}")
    return 0
