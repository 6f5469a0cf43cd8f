"""``d2ar info STORE``: prior, ratios, sizes, bits per token, dates and extent of a token store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["describe", "register", "run", "token_bits"]


def token_bits(
    tokens: np.ndarray, table: np.ndarray, payload_bytes: int, header_bytes: int
) -> dict[str, float]:
    """Bits per token: as coded, ideal under the prior's token model, and this store's entropy.

    Parameters
    ----------
    tokens : numpy.ndarray
        ``(..., k)`` decoded tokens of the store.
    table : numpy.ndarray
        The prior's token model ``(K, codebook_size)``.
    payload_bytes : int
        Bytes of the token chunk files.
    header_bytes : int
        Bytes of the payload headers in those files (one per chunk).

    Returns
    -------
    dict
        ``coded`` (payloads without headers), ``coded_with_headers``, ``model`` (ideal
        ``-log2 p`` under the token model) and ``empirical`` (mean over positions of the entropy
        of this store's tokens at that position; biased low when there are few tiles).
    """
    from xr_d2ar.codecs import payload

    k = tokens.shape[-1]
    flat = tokens.reshape(int(np.prod(tokens.shape[:-1])), k)
    n = flat.size
    if n == 0:
        return {
            "coded": 0.0,
            "coded_with_headers": 0.0,
            "model": 0.0,
            "empirical": 0.0,
            "n_tokens": 0,
        }
    entropy = []
    for j in range(k):
        p = np.bincount(flat[:, j]) / flat.shape[0]
        p = p[p > 0]
        entropy.append(float(-(p * np.log2(p)).sum()))
    return {
        "coded": 8.0 * (payload_bytes - header_bytes) / n,
        "coded_with_headers": 8.0 * payload_bytes / n,
        "model": payload.ideal_bits(flat, table) / n,
        "empirical": float(np.mean(entropy)),
        "n_tokens": int(n),
    }


def _extent(tokens: Any, layout: Any) -> dict[str, float]:
    """Longitude/latitude bounds (degrees) of the pixel edges."""
    from pyproj import CRS, Transformer

    axes = layout.manifest["axes"]

    def edges(name: str) -> tuple[float, float]:
        axis = axes.get(name)
        values = (
            (axis["start"] + axis["step"] * np.arange(axis["size"]))
            if axis
            else tokens[name].values
        )
        half = (values[1] - values[0]) / 2 if values.size > 1 else 0.0
        return float(values[0] - half), float(values[-1] + half)

    (x0, x1), (y0, y1) = edges("x"), edges("y")
    crs = CRS.from_wkt(tokens["spatial_ref"].attrs["crs_wkt"])
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    xs = np.array([x0, x1, x0, x1, (x0 + x1) / 2])
    ys = np.array([y0, y0, y1, y1, (y0 + y1) / 2])
    lon, lat = to_ll.transform(xs, ys)
    return {
        "lon_min": float(np.min(lon)),
        "lon_max": float(np.max(lon)),
        "lat_min": float(np.min(lat)),
        "lat_max": float(np.max(lat)),
    }


def describe(path: str) -> dict[str, Any]:
    """Everything ``d2ar info`` prints, as a JSON-ready dict (decodes tokens, not pixels)."""
    import xarray as xr
    import zarr

    from xr_d2ar import store
    from xr_d2ar.codecs import lookup
    from xr_d2ar.errors import ModelMismatchError

    root = Path(path)
    sizes = store.store_sizes(root)  # first: a clear error when there is no token store
    tokens = xr.open_zarr(root, chunks=None, consolidated=False, mask_and_scale=False)
    layout = store.TokenLayout.from_attrs(tokens.attrs)
    times = tokens["time"].values
    info: dict[str, Any] = {
        "store": str(root),
        "zarr_format": 3 if (root / "zarr.json").is_file() else 2,
        "model": {
            "name": layout.model_name,
            "sha256": layout.model_sha256,
            "bytes": layout.model_nbytes,
        },
        "source": {
            "shape": list(layout.shape),
            "dtype": np.dtype(layout.dtype).name,
            "scale_factor": layout.scale_factor,
            "add_offset": layout.add_offset,
            "fill_value": layout.fill_value,
            "crs": layout.crs,
        },
        "tokens": {
            "per_tile": layout.n_tokens,
            "tile_size": layout.tile_size,
            "codebook_size": layout.codebook_size,
            "target_ratio": layout.ratio,
            "seed": layout.seed,
            "steps": layout.steps,
        },
        "sizes": {
            "source_bytes": sizes.source_bytes,
            "token_bytes": sizes.token_bytes,
            "store_bytes": sizes.store_bytes,
            "token_ratio": sizes.token_ratio,
            "store_ratio": sizes.store_ratio,
            "model_bytes": sizes.model_bytes,
        },
        "dates": {
            "first": str(times.min())[:19],
            "last": str(times.max())[:19],
            "count": int(times.size),
        },
        "extent": _extent(tokens, layout),
    }
    try:
        table = np.asarray(
            lookup.find_model(layout.model_sha256, name=layout.model_name).token_model
        )
    except ModelMismatchError as exc:
        info["bits_per_token"] = {"note": str(exc)}
        return info
    array = zarr.open_array(root / store.TOKENS, mode="r")
    _, headers = store.token_headers(root)
    info["bits_per_token"] = token_bits(array[...], table, sizes.token_bytes, headers)
    return info


def _print(info: dict[str, Any]) -> None:
    m, s, t, z = info["model"], info["source"], info["tokens"], info["sizes"]
    d, e, b = info["dates"], info["extent"], info["bits_per_token"]
    print(f"store    {info['store']} (zarr v{info['zarr_format']})")
    print(
        f"prior    {m['name']} sha256 {m['sha256']} ({m['bytes'] / 1e6:.1f} MB, not in the store)"
    )
    print(
        f"source   {' x '.join(map(str, s['shape']))} (time, band, y, x) {s['dtype']}, "
        f"scale {s['scale_factor']:g}, offset {s['add_offset']:g}, fill {s['fill_value']}, "
        f"{s['crs']}"
    )
    target = "-" if t["target_ratio"] is None else f"{t['target_ratio']:g}x"
    print(
        f"tokens   {t['per_tile']} per {t['tile_size']} px tile (codebook {t['codebook_size']}), "
        f"target ratio {target}, decode seed {t['seed']}, {t['steps']} steps"
    )
    print(
        f"ratio    {z['token_ratio']:,.1f}x tokens only ({z['token_bytes']:,} B); "
        f"{z['store_ratio']:,.1f}x whole store ({z['store_bytes']:,} B); "
        f"source {z['source_bytes']:,} B"
    )
    if "note" in b:
        print(f"bits     unavailable: {b['note']}")
    else:
        print(
            f"bits     per token: {b['coded']:.3f} coded ({b['coded_with_headers']:.3f} with chunk "
            f"headers), {b['model']:.3f} ideal under the token model, {b['empirical']:.3f} "
            f"empirical entropy of these {b['n_tokens']:,} tokens"
        )
    print(f"dates    {d['first']} .. {d['last']} ({d['count']})")
    print(
        f"extent   lon {e['lon_min']:.5f} .. {e['lon_max']:.5f}, "
        f"lat {e['lat_min']:.5f} .. {e['lat_max']:.5f}"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` sub-command."""
    p = subparsers.add_parser(
        "info",
        help="describe a token store (prior, ratio, sizes, dates, extent)",
        description="Describe a D2AR token store: prior, ratios, sizes, bits per token, dates, "
        "extent.",
    )
    p.add_argument("store", help="token store written by `d2ar compress`")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the description of ``args.store``."""
    info = describe(args.store)
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        _print(info)
    return 0
