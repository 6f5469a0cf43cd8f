"""``d2ar reconstruct STORE OUT``: decode a token store into a NetCDF file or a Zarr store."""

from __future__ import annotations

import argparse
import sys
import time

from xr_d2ar._options import DECODE_ENGINES
from xr_d2ar.cli.compress import add_cluster_options, cluster_kwargs
from xr_d2ar.datasets import NETCDF_ENGINE

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``reconstruct`` sub-command."""
    p = subparsers.add_parser(
        "reconstruct",
        help="decode a token store into a cube (NetCDF or Zarr)",
        description="Decode a D2AR token store into the original-looking cube. OUT ending in .nc "
        "is written as NetCDF, anything else as a Zarr store.",
    )
    p.add_argument("store", help="token store written by `d2ar compress`")
    p.add_argument("output", help="cube to write: file.nc (NetCDF) or a Zarr folder")
    p.add_argument("--model", help="prior to decode with (default: found by the store's sha256)")
    p.add_argument(
        "--engine",
        choices=DECODE_ENGINES,
        default=None,
        help="decoder: auto (default: cext on CPUs where it is the faster, torch elsewhere), "
        "torch, or cext (our CPU kernels: the same bits on every CPU, batch and thread count)",
    )
    p.add_argument("--zarr-format", type=int, choices=(2, 3), default=3, help="for a Zarr OUT")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_cluster_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Decode ``args.store`` into ``args.output``."""
    from pathlib import Path

    from xr_d2ar import parallel, store
    from xr_d2ar.backend import open_dataset

    out = Path(args.output)
    netcdf = out.suffix.lower() in (".nc", ".nc4", ".netcdf")
    if not netcdf and out.suffix.lower() not in ("", ".zarr"):  # e.g. out.tif: say what it gets
        print(
            f"d2ar reconstruct: error: {out.name} would be written as a Zarr folder: OUT ends in "
            ".nc for NetCDF, or names a Zarr folder (no suffix or .zarr). Other formats (e.g. "
            "GeoTIFF) are not written: convert the NetCDF or Zarr output.",
            file=sys.stderr,
        )
        return 1
    if not out.parent.is_dir():
        print(
            f"d2ar reconstruct: error: the folder {out.parent} does not exist. Create it first.",
            file=sys.stderr,
        )
        return 1
    if out.exists() and not args.overwrite:
        print(
            f"d2ar reconstruct: error: {out} exists. Pass --overwrite to replace it.",
            file=sys.stderr,
        )
        return 1
    start = time.perf_counter()
    cube = open_dataset(args.store, chunks={}, model=args.model, decode_engine=args.engine)
    if not netcdf:
        cube = store.for_zarr(cube, args.zarr_format)  # strings that Zarr v3 specifies
    for var in cube.variables.values():  # no fill value invented on coordinates and masks
        var.encoding = {} if "_FillValue" in var.attrs else {"_FillValue": None}
    if netcdf:
        pending = cube.to_netcdf(out, engine=NETCDF_ENGINE, compute=False)
    else:
        pending = cube.to_zarr(
            out, mode="w", zarr_format=args.zarr_format, consolidated=False, compute=False
        )
    parallel.compute(pending, **cluster_kwargs(args))
    dims = " x ".join(f"{d}={n}" for d, n in cube.sizes.items())
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s: {dims}")
    return 0
