"""Quality of a prior on the held-out dates of its training places, at matched compression ratios.

For each multi-date cube: the held-out dates (:func:`xr_d2ar.datasets.split_time`, the same data as
``d2ar bench``) are cut into tiles, encoded, and for each target ratio the largest prefix k of
tokens is kept whose *real* stored size meets the ratio:

    ratio = original bytes (stored dtype) / (token payload + conditioning)

- token payload: the held-out cube's tokens entropy-coded with the prior's token model by
  :func:`xr_d2ar.codecs.payload.encode` (one self-describing payload, header included);
- conditioning: 3 bytes per image (uint16 day offset + uint8 sensor id). Tile positions (lat/lon)
  follow from the grid coordinates, which every store keeps and which are not counted for any codec.

Decoded values are rounded to the stored dtype as a store would, then scored with
:class:`xr_d2ar.metrics.Scorer` exactly as the bench does (all data pixels, labels if any), and
again on clear pixels only (``valid == 1``) where the cube has a mask: the prior weighs clouds 0.1
in training, since masks are stored losslessly beside the tokens. The
prior's weights are not in the ratio; their size is reported beside it. Single-date cubes have no
held-out date and are skipped (the prior saw them).

    python -m xr_d2ar.train.evaluate --out benchmarks/results/prior_quality
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from xr_d2ar.bench import BenchResult, BenchRow, read_report

__all__ = [
    "check_tile",
    "evaluate_cube",
    "evaluate_prior",
    "heldout_token_bits",
    "record_in_prior",
    "record_token_bits",
    "summary_markdown",
    "to_markdown",
]

CONDITIONING_BYTES_PER_IMAGE = 3


def _stored_roundtrip(phys: np.ndarray, da: xr.DataArray) -> np.ndarray:
    """Physical values -> stored dtype (rounded, clipped) -> physical, as a store would keep them."""
    from xr_d2ar.baselines._base import to_stored

    scale = float(da.attrs.get("scale_factor", 1.0))
    offset = float(da.attrs.get("add_offset", 0.0))
    stored = to_stored((np.asarray(phys, np.float64) - offset) / scale, da.dtype)
    return stored.astype(np.float64) * scale + offset


def _tiles(model: Any, ds: xr.Dataset) -> dict[str, Any]:
    """The cube's tiles ``(t * ny * nx, B, T, T)`` (physical) and the model's conditioning keywords."""
    from xr_d2ar.datasets import to_reflectance
    from xr_d2ar.parallel import tile_conditioning
    from xr_d2ar.tiling import TileGrid, flatten_tiles

    grid = TileGrid.for_shape(ds.sizes["y"], ds.sizes["x"], model.tile_size)
    tiles = grid.to_tiles(to_reflectance(ds["reflectance"]).values)  # (t, b, ny, nx, T, T)
    t, b, ny, nx = tiles.shape[:4]
    lon, lat = grid.centres(ds)
    # the training reader's bands: the first date's sensor wavelengths where the cube has them
    wl = ds["sensor_wavelength"].values[0] if "sensor_wavelength" in ds else ds["wavelength"].values
    bw = ds["sensor_bandwidth"].values[0] if "sensor_bandwidth" in ds else ds["bandwidth"].values
    return {
        "grid": grid, "tiles": flatten_tiles(tiles), "shape": (t, b, ny, nx),
        "meta": {"wavelength": wl, "bandwidth": bw,
                 **tile_conditioning(lat, lon, ds["time"].values, ds["sensor"].values)},
    }


def _held_out(model: Any, ds: xr.Dataset, holdout: float) -> tuple[xr.Dataset, dict[str, Any], np.ndarray]:
    """The cube's held-out dates (loaded), their tiles (:func:`_tiles`) and all K tokens of each
    tile, ``(t * ny * nx, K)``."""
    from xr_d2ar.datasets import split_time

    _, held = split_time(ds, holdout=holdout)
    held = held.load()
    cut = _tiles(model, held)
    return held, cut, model.encode_tiles(cut["tiles"], n_tokens=model.n_tokens, **cut["meta"])


def _payload_bytes(tokens: np.ndarray, model: Any) -> int:
    from xr_d2ar.codecs.payload import encode

    return len(encode(tokens, model.token_model, model.sha256))


def evaluate_cube(
    model: Any, name: str, ds: xr.Dataset, *, ratios: Sequence[float], steps: int = 8, seed: int = 0,
    holdout: float = 0.2,
) -> dict[str, Any]:
    """Rows of (target ratio, k, achieved ratio, metrics) for the held-out dates of one cube."""
    from xr_d2ar.metrics import Scorer
    from xr_d2ar.tiling import unflatten_tiles

    held, cut, tokens = _held_out(model, ds, holdout)
    da = held["reflectance"]
    t, _, ny, nx = cut["shape"]
    original_bytes = da.size * da.dtype.itemsize
    cond = CONDITIONING_BYTES_PER_IMAGE * t
    tokens = tokens.reshape(t, ny, nx, model.n_tokens)
    sizes = [_payload_bytes(tokens[..., :k], model) + cond for k in range(model.n_tokens + 1)]
    labels = held.get("label")
    scorer = Scorer(da, labels=labels, classify=True, seed=seed)
    clear = None
    if "valid" in held:  # the prior's own target: clear pixels (masks are stored losslessly)
        clear = Scorer(da, mask=held["valid"].values.astype(bool)[:, None], classify=False, seed=seed)
    index = np.arange(t * ny * nx)
    rows = []
    for target in [None, *ratios]:  # None: zero tokens (the prior's own climatology)
        fits = [k for k, s in enumerate(sizes) if target is None or original_bytes / s >= target]
        if target is None:
            k = 0
        elif not fits:
            rows.append({"target": target, "status": "cannot reach",
                         "note": f"largest ratio {original_bytes / sizes[0]:.0f} (k = 0)"})
            continue
        else:
            k = max(fits)
        rec = model.decode_tiles(tokens[..., :k].reshape(len(index), k), tile_index=index, seed=seed, steps=steps,
                                 **cut["meta"])
        rec = unflatten_tiles(rec, t, ny, nx)  # (t, b, ny, nx, T, T)
        image = _stored_roundtrip(cut["grid"].from_tiles(rec).astype(np.float64), da)
        row = {"target": target, "status": "ok", "tokens": k, "nbytes": sizes[k],
               "ratio": original_bytes / sizes[k], "metrics": scorer(image)}
        if clear is not None:
            row["metrics_clear"] = {key: clear(image)[key] for key in ("psnr", "ssim", "spectral_angle_deg")}
        rows.append(row)
    return {
        "cube": name, "subset": f"held-out dates (last {t} of {ds.sizes['time']})", "shape": list(da.shape),
        "dtype": str(da.dtype), "original_bytes": int(original_bytes), "tiles_per_image": ny * nx,
        "conditioning_bytes": cond, "rows": rows,
    }


def evaluate_prior(
    model: Any, names: Sequence[str] | None = None, *, ratios: Sequence[float] = (100, 1000, 10000),
    steps: int = 8, seed: int = 0, progress: bool = True,
) -> dict[str, Any]:
    """:func:`evaluate_cube` over sample cubes with two or more dates (default: all of them)."""
    import torch
    from tqdm.auto import tqdm

    from xr_d2ar import datasets

    names = list(names or datasets.available())
    cubes = {n: datasets.open(n) for n in names}
    multi = [n for n in names if cubes[n].sizes["time"] >= 2]
    out = {
        "prior": {"name": model.name, "sha256": model.sha256, "nbytes": model.nbytes,
                  "training": model.config.get("training", {})},
        "decode": {"steps": steps, "solver": "euler", "seed": seed},
        "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                    "device": str(model.device), "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())},
        "skipped": [n for n in names if n not in multi],
        "cubes": [],
    }
    for name in tqdm(multi, desc="evaluate", disable=not progress):
        out["cubes"].append(evaluate_cube(model, name, cubes[name], ratios=ratios, steps=steps, seed=seed))
    return out


def check_tile(model: Any, *, tokens: int, cube: str = "worldcereal_flanders_a_s2", seed: int = 0,
               steps: int = 8) -> dict[str, Any]:
    """PSNR of one real tile (first held-out date of ``cube``, tile (0, 0)) through encode/decode.

    What the shipped prior's config records under ``metrics.check`` and its test recomputes.
    """
    from xr_d2ar import datasets
    from xr_d2ar.metrics import psnr

    _, held = datasets.split_time(datasets.open(cube))
    one = held.isel(time=[0]).load()
    cut = _tiles(model, one)
    tok = model.encode_tiles(cut["tiles"][:1], n_tokens=tokens, **_first(cut["meta"]))
    rec = model.decode_tiles(tok, tile_index=np.array([0]), seed=seed, steps=steps, **_first(cut["meta"]))
    t = model.tile_size
    orig = cut["tiles"][:1]
    clear = one["valid"].values[:, None, :t, :t].astype(bool) if "valid" in one else None
    out = {"cube": cube, "date": str(one.time.values[0])[:10], "tile": [0, 0], "tokens": tokens, "seed": seed,
           "steps": steps, "psnr": psnr(orig, rec, data_range=1.0)}
    if clear is not None and clear.any():
        out["psnr_clear"] = psnr(orig, rec, data_range=1.0, mask=np.broadcast_to(clear, orig.shape))
    return out


def _first(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if k in ("wavelength", "bandwidth") else v[:1]) for k, v in meta.items()}


def heldout_token_bits(model: Any, names: Sequence[str] | None = None, *, holdout: float = 0.2) -> dict[str, Any]:
    """What the tokens of new observations cost: code length per token position (bits, ``(K,)``)
    of every tile of the held-out dates of the sample cubes with two or more dates (default: all),
    under the prior's token model.

    The token model's own ``bits`` are measured on rows of its training tiles, whose dates it
    has seen; tokens of later dates cost more (1.31x for the shipped prior), which is what
    ``compress(ratio=)`` should plan with. Returns ``{"bits", "n_tiles", "cubes"}``.
    """
    from xr_d2ar import datasets
    from xr_d2ar.model.token_model import cross_entropy_bits

    tokens, used = [], []
    for name in datasets.available() if names is None else names:
        ds = datasets.open(name)
        if ds.sizes["time"] < 2:
            continue
        tokens.append(_held_out(model, ds, holdout)[2])
        used.append(name)
    if not tokens:
        raise ValueError("No cube with two or more dates: nothing is held out to measure token costs on.")
    tokens = np.concatenate(tokens)
    return {"bits": cross_entropy_bits(model.token_model, tokens).tolist(), "n_tiles": len(tokens), "cubes": used}


def record_token_bits(model: Any, json_path: str | Path, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Set the prior's ``token_bits`` (the rate ``tokens_for_ratio`` plans with) to
    :func:`heldout_token_bits`, keeping the training-row figure under ``metrics.token_bits``.

    Only the JSON changes: the weights and the token model's tables (and so the sha256, stored
    tokens and decoded values) stay as they are. ``model`` (the prior of ``json_path``) takes the
    new rate too; :func:`~xr_d2ar.model.load_model` caches priors by their weights, so another
    loaded copy of the same weights keeps the old rate until the process restarts.
    """
    path = Path(json_path)
    config = json.loads(path.read_text())
    if config.get("sha256") != model.sha256:
        raise ValueError(
            f"{path} belongs to weights {str(config.get('sha256'))[:12]}, not to prior {model.name!r} "
            f"({model.sha256[:12]}). Pass the JSON file of the prior you measured."
        )
    held = heldout_token_bits(model, names)
    metrics = config.setdefault("metrics", {})
    metrics.pop("token_bits_total", None)  # the name before held-out figures were kept
    before = metrics.get("token_bits", {}).get("training_rows_total", float(np.sum(config["token_bits"])))
    config["token_bits"] = held["bits"]
    metrics["token_bits"] = {
        "source": f"held-out dates of {len(held['cubes'])} sample cubes ({held['n_tiles']} tiles)",
        "cubes": held["cubes"], "held_out_total": float(np.sum(held["bits"])), "training_rows_total": before,
        "command": "python -m xr_d2ar.train.evaluate --token-bits",
    }
    path.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    model.token_bits = np.asarray(held["bits"], np.float64)
    model.config["token_bits"] = held["bits"]
    model.config["metrics"] = metrics
    return held


def record_in_prior(result: dict[str, Any], model: Any, json_path: str | Path) -> None:
    """Write the held-out summary and a one-tile check into the prior's JSON config (``metrics``).

    The JSON is not covered by the weights' sha256, so recording does not change the prior's identity.
    """
    path = Path(json_path)
    config = json.loads(path.read_text())
    held = {}
    for cube in result["cubes"]:
        held[cube["cube"]] = {
            f"{row['target']:g}x": {"tokens": row["tokens"], "ratio": row["ratio"],
                                   "psnr": row["metrics"]["psnr"], "ssim": row["metrics"]["ssim"]}
            for row in cube["rows"] if row["status"] == "ok" and row["target"] is not None
        }
    k = next(r["tokens"] for r in result["cubes"][[c["cube"] for c in result["cubes"]].index(
        "worldcereal_flanders_a_s2")]["rows"] if r["status"] == "ok" and r["target"] == 1000)
    config.setdefault("metrics", {})["held_out"] = held
    config["metrics"]["check"] = check_tile(model, tokens=k)
    path.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")


def _report(bench_dir: Path, cube: str) -> BenchResult | None:
    """The cube's ``d2ar bench`` report, if it was run."""
    path = bench_dir / f"{cube}.json"
    return read_report(path) if path.is_file() else None


def _best_classical(report: BenchResult | None, target: float) -> BenchRow | None:
    """The classical codec with the best PSNR at ``target`` in the bench report (None if none)."""
    if report is None:
        return None
    best = next((b for b in report.best_by_ratio() if b["target_ratio"] == target), None)
    if best is None or best["codec"] is None:
        return None
    return next(r for r in report.rows if r.codec == best["codec"] and r.target_ratio == target)


def _reference(report: BenchResult | None, codec: str = "image-mean") -> BenchRow | None:
    """A trivial reference's row (``image-mean`` or ``climatology``) of the bench report."""
    if report is None:
        return None
    return next((r for r in report.rows if r.codec == codec and r.status == "ok"), None)


def _cells(m: dict[str, Any]) -> list[str]:
    cls = m.get("classification") or {}
    ndvi = m.get("ndvi_mae")
    return [f"{m['psnr']:.1f}", f"{m['ssim']:.3f}", f"{m['spectral_angle_deg']:.1f}",
            "-" if ndvi is None else f"{ndvi:.3f}",
            "-" if "agreement" not in cls else f"{cls['agreement']:.2f}"]


def to_markdown(result: dict[str, Any], bench_dir: str | Path) -> str:
    """A table per cube: D2AR rows beside the best classical codec of ``d2ar bench`` at each target."""
    bench_dir = Path(bench_dir)
    p = result["prior"]
    lines = [
        "# D2AR prior quality on held-out dates",
        "",
        (f"- prior: `{p['name']}` sha256 `{p['sha256'][:16]}`, weights {p['nbytes'] / 1e6:.1f} MB "
         "(not in the ratios; amortised over an archive)"),
        (f"- decode: {result['decode']['steps']} Euler steps, seed {result['decode']['seed']}; "
         f"machine: {result['machine']['cpu']}, {result['machine']['torch_threads']} torch threads, "
         f"{result['machine']['device']}, {result['machine']['date']}"),
        "- ratio = original bytes / (entropy-coded token payload incl. header + 3 B conditioning per image)",
        "- metrics: `xr_d2ar.metrics.Scorer`, as `d2ar bench` (all data pixels; classification agreement)",
        ("- classical: best PSNR among SZ3/ZFP/SPERR/JPEG 2000/HTJ2K/JPEG XL at that target, from "
         "`benchmarks/results/bench/<cube>.json`"),
        ("- ref.: the trivial references of `d2ar bench` (`image-mean`: one mean per image and band; "
         "`climatology`: the place's history, no bytes per image)"),
        f"- skipped (single date, seen in training): {', '.join(result['skipped']) or 'none'}",
        "",
    ]
    head = ("| target | codec | k tokens | achieved | PSNR dB | SSIM | SAM deg | NDVI MAE | class. agree "
            "| PSNR clear | SSIM clear |")
    for cube in result["cubes"]:
        report = _report(bench_dir, cube["cube"])
        lines += [f"## {cube['cube']}", "", f"{cube['subset']}, shape {cube['shape']} {cube['dtype']}", "",
                  head, "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in cube["rows"]:
            tgt = "k=0" if row["target"] is None else f"{row['target']:g}"
            if row["status"] != "ok":
                lines.append(f"| {tgt} | d2ar | - | {row['status']}: {row['note']} | | | | | | | |")
                continue
            mc = row.get("metrics_clear")
            clear = f"{mc['psnr']:.1f} | {mc['ssim']:.3f}" if mc else "- | -"
            lines.append(f"| {tgt} | **d2ar** | {row['tokens']} | {row['ratio']:.0f} | "
                         + " | ".join(_cells(row["metrics"])) + f" | {clear} |")
            if row["target"] is not None:
                best = _best_classical(report, row["target"])
                if best is None:
                    lines.append(f"| {tgt} | classical | - | none reaches it | | | | | | | |")
                else:
                    lines.append(f"| {tgt} | {best.codec} | - | {best.ratio:.0f} | "
                                 + " | ".join(_cells(best.metrics)) + " | n/a | n/a |")
        for ref in filter(None, (_reference(report, "image-mean"), _reference(report, "climatology"))):
            lines.append(f"| ref. | {ref.codec} | - | {ref.ratio:.0f} | "
                         + " | ".join(_cells(ref.metrics)) + " | n/a | n/a |")
        lines.append("")
    return "\n".join(lines)


def summary_markdown(result: dict[str, Any], bench_dir: str | Path) -> str:
    """One table over cubes: D2AR at each target beside the best classical codec at that target
    and at 100x, and the image-mean reference (PSNR dB / SSIM)."""
    bench_dir = Path(bench_dir)
    lines = [
        ("| cube | target | D2AR: achieved, PSNR / SSIM | best classical at target | "
        "best classical at 100x | image-mean: ratio, PSNR / SSIM |"),
        "|---|---|---|---|---|---|",
    ]

    def cell(row: BenchRow | None) -> str:
        if row is None:
            return "none reaches it"
        return f"{row.codec} {row.metrics['psnr']:.1f} / {row.metrics['ssim']:.2f}"

    for cube in result["cubes"]:
        report = _report(bench_dir, cube["cube"])
        ref = _reference(report)
        ref_cell = (f"{ref.ratio:.0f}x, {ref.metrics['psnr']:.1f} / {ref.metrics['ssim']:.2f}"
                    if ref else "-")
        for row in cube["rows"]:
            if row["target"] is None:
                continue
            d2ar = (f"{row['ratio']:.0f}x, {row['metrics']['psnr']:.1f} / "
                    f"{row['metrics']['ssim']:.2f} (k={row['tokens']})"
                    if row["status"] == "ok" else row["status"])
            lines.append(f"| {cube['cube']} | {row['target']:g} | {d2ar} | "
                         f"{cell(_best_classical(report, row['target']))} | "
                         f"{cell(_best_classical(report, 100.0))} | {ref_cell} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: evaluate a prior and write ``<out>.json`` and ``<out>.md``."""
    from xr_d2ar.model.api import load_model

    ap = argparse.ArgumentParser(prog="python -m xr_d2ar.train.evaluate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default=None, help="prior path (default: the shipped prior)")
    ap.add_argument("--cubes", nargs="*", default=None, help="sample-cube names (default: all)")
    ap.add_argument("--ratios", default="100,1000,10000")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--bench-dir", default="benchmarks/results/bench")
    ap.add_argument("--out", default="benchmarks/results/prior_quality")
    ap.add_argument("--record", action="store_true", help="also record the results in the prior's JSON")
    ap.add_argument("--render", action="store_true",
                    help="only re-write the Markdown tables from an existing <out>.json")
    ap.add_argument("--token-bits", action="store_true",
                    help="only measure what tokens of the held-out dates cost and record it as the "
                         "prior's token_bits (what compress(ratio=) plans with)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.token_bits:
        from xr_d2ar.model.api import DEFAULT_PRIOR
        from xr_d2ar.model.checkpoint import prior_paths

        model = load_model(args.prior, device="cpu")
        held = record_token_bits(model, prior_paths(args.prior or DEFAULT_PRIOR)[1], args.cubes)
        print(f"token_bits of {model.name}: {sum(held['bits']):.1f} bits for all {model.n_tokens} tokens, "
              f"measured on {held['n_tiles']} held-out tiles of {', '.join(held['cubes'])}")
        return 0
    if args.render:
        result = json.loads(out.with_suffix(".json").read_text())
    else:
        model = load_model(args.prior, device="cpu")
        ratios = [float(r) for r in args.ratios.split(",")]
        result = evaluate_prior(model, args.cubes, ratios=ratios, steps=args.steps)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    out.with_suffix(".md").write_text(to_markdown(result, args.bench_dir) + "\n")
    summary = out.with_name(out.name + "_summary.md")
    summary.write_text(summary_markdown(result, args.bench_dir))
    print(out.with_suffix(".md").read_text())
    if args.record and not args.render:
        from xr_d2ar.model.api import DEFAULT_PRIOR
        from xr_d2ar.model.checkpoint import prior_paths

        record_in_prior(result, model, prior_paths(args.prior or DEFAULT_PRIOR)[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
