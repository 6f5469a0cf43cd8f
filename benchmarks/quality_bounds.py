"""How far can any 1000x code go on these archives? Oracle bounds next to the shipped prior.

    python benchmarks/quality_bounds.py [--cubes A,B,...] [--out benchmarks/results]

For the held-out dates of each multi-date cube (:func:`xr_d2ar.datasets.split_time`, as in
``BENCHMARKS.md`` section 2), PSNR (:class:`xr_d2ar.metrics.Scorer`, all data pixels) of
reconstructions that are *given* exact information for free, so they bound what codes built from
that information can reach:

- ``blocks G``: every band's G x G block means, unquantised, bilinear between block centres (the
  shipped prior's statistics tokens are G = 1, 2 and 4);
- ``place median + blocks G``: the per-pixel median of the training dates' clear pixels (what a
  prior could memorise of the place), shifted to the exact G x G block means;
- ``best training date + blocks G``: the training date closest to the held-out image after that
  shift (an index of about 6 bits, chosen with the original in hand);
- ``place PCA m``: projection on the first m principal components of the training dates
  (m unquantised coefficients per image, basis stored in the prior).

Next to them: the entropy of the G x G block means as tokens (quantised with the shipped prior's
step, predicted from the parent level), the bits a 64 x 64 tile of the cube has at 1000x, and the
shipped prior and best classical codec figures from ``prior_quality.json`` and the bench reports.
Writes ``quality_bounds.json`` and ``quality_bounds.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model

CUBES = ("worldcereal_flanders_a_s2", "worldcereal_flanders_b_s2", "sentinel2_l3a_bouconne")
RESULTS = Path(__file__).resolve().parent / "results"


def block_means(a: np.ndarray, grid: int) -> np.ndarray:
    """(t, b, H, W) -> (t, b, G, G) means over the largest G-divisible window (edge rows/cols dropped)."""
    t, b, h, w = a.shape
    sh, sw = h // grid, w // grid
    return a[:, :, : sh * grid, : sw * grid].reshape(t, b, grid, sh, grid, sw).mean((3, 5))


def shift_to_blocks(rec: np.ndarray, ref: np.ndarray, grid: int) -> np.ndarray:
    """rec shifted by a bilinear field so that its G x G block means approach ref's (one step)."""
    d = block_means(ref, grid) - block_means(rec, grid)
    up = F.interpolate(torch.from_numpy(d), size=rec.shape[-2:], mode="bilinear", align_corners=False)
    return rec + up.numpy()


def entropy_bits(values: np.ndarray) -> float:
    """Empirical entropy (bits per symbol) of integer symbols."""
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def bounds_for(name: str, grids: tuple[int, ...] = (2, 4, 8)) -> dict:
    from xr_d2ar import datasets, load_model
    from xr_d2ar.datasets import to_reflectance
    from xr_d2ar.metrics import Scorer
    from xr_d2ar.model.normalise import band_stats
    from xr_d2ar.model.stats import stat_step

    ds = datasets.open(name)
    train, held = datasets.split_time(ds)
    held, train = held.load(), train.load()
    da = held["reflectance"]
    x = np.nan_to_num(to_reflectance(da).values.astype(np.float64))  # (t, b, y, x) physical
    hist = to_reflectance(train["reflectance"]).values.astype(np.float64)
    score = Scorer(da, classify=False)
    psnr = lambda rec: round(float(score(rec)["psnr"]), 2)
    rows: dict[str, float] = {}
    zero = np.zeros_like(x)
    for g in (1, *grids):
        rows[f"blocks {g}"] = psnr(shift_to_blocks(zero, x, g))
    clear = train["valid"].values.astype(bool)[:, None] if "valid" in train else np.isfinite(hist)
    with np.errstate(all="ignore"):
        median = np.nanmedian(np.where(clear, hist, np.nan), axis=0)
    median = np.where(np.isfinite(median), median, np.nan_to_num(np.nanmedian(hist, axis=0)))
    hist = np.nan_to_num(hist)
    for g in (2, 4):
        rows[f"place median + blocks {g}"] = psnr(shift_to_blocks(np.broadcast_to(median, x.shape).copy(), x, g))
        best = np.empty_like(x)
        for i in range(len(x)):
            cand = shift_to_blocks(hist, np.broadcast_to(x[i], hist.shape), g)
            best[i] = cand[np.argmin(((cand - x[i]) ** 2).mean(axis=(1, 2, 3)))]
        rows[f"best training date + blocks {g}"] = psnr(best)
    flat = hist.reshape(len(hist), -1)
    mu = flat.mean(0)
    _, _, vt = np.linalg.svd(flat - mu, full_matrices=False)
    for m in (8, 32):
        coef = (x.reshape(len(x), -1) - mu) @ vt[:m].T
        rows[f"place PCA {m}"] = psnr((mu + coef @ vt[:m]).reshape(x.shape))
    # entropy of block means as tokens, in the prior's normalised units and quantisation step
    model = load_model()
    wl = ds["wavelength"].values
    mean, std = band_stats(model.config["normalisation"], held["sensor"].values.astype(str), wl)
    t = model.tile_size
    xn = ((x - mean[:, :, None, None]) / std[:, :, None, None])[:, :, :t, :t]
    step = stat_step(model.codebook_size)
    tokens = {}
    parent = block_means(xn, 1)
    for g in grids:
        level = block_means(xn, g)
        pred = np.repeat(np.repeat(parent, g // parent.shape[-1], 2), g // parent.shape[-1], 3)
        bits = entropy_bits(np.round((level - pred) / step).astype(np.int64).ravel())
        tokens[str(g)] = {"tokens_per_tile": int(x.shape[1] * g * g), "bits_per_token": round(bits, 2),
                          "bits_per_tile": round(bits * x.shape[1] * g * g)}
        parent = level
    budget = t * t * x.shape[1] * da.dtype.itemsize * 8 / 1000
    return {"cube": name, "held_out_dates": len(x), "training_dates": len(hist),
            "psnr_db": rows, "block_tokens": tokens, "tile_bits_at_1000x": round(budget)}


def reference_rows(name: str) -> dict:
    """Shipped prior at 1000x and best classical codec at 100x, from the recorded reports."""
    from xr_d2ar.train.evaluate import _best_classical, _report

    prior = json.loads((RESULTS / "prior_quality.json").read_text())
    cube = next(c for c in prior["cubes"] if c["cube"] == name)
    row = next(r for r in cube["rows"] if r.get("target") == 1000 and r["status"] == "ok")
    best = _best_classical(_report(RESULTS / "bench", name), 100.0)
    return {"d2ar_1000x": round(row["metrics"]["psnr"], 2), "d2ar_1000x_tokens": row["tokens"],
            "best_classical_100x": None if best is None else f"{best.codec} {best.metrics['psnr']:.2f}"}


def to_markdown(result: dict) -> str:
    names = list(result["cubes"][0]["psnr_db"])
    lines = [
        "# Oracle bounds at the held-out dates (`benchmarks/quality_bounds.py`)", "",
        f"- date: {result['date']}; machine: {result['machine']}; {result['wall_s']:.0f} s",
        "- PSNR in dB over all data pixels of the held-out dates; the oracles get exact information for free.", "",
        "| reconstruction | " + " | ".join(c["cube"] for c in result["cubes"]) + " |",
        "|---|" + "---|" * len(result["cubes"]),
    ]
    for key in names:
        lines.append(f"| {key} | " + " | ".join(f"{c['psnr_db'][key]:.2f}" for c in result["cubes"]) + " |")
    lines.append("| shipped prior at 1000x (tokens) | " + " | ".join(
        f"{c['reference']['d2ar_1000x']:.2f} ({c['reference']['d2ar_1000x_tokens']})" for c in result["cubes"]) + " |")
    lines.append("| best classical codec at 100x | " + " | ".join(
        str(c["reference"]["best_classical_100x"]) for c in result["cubes"]) + " |")
    lines += ["", "Block means as tokens (step of the shipped prior, predicted from the parent level):", "",
              "| cube | bits of a 64x64 tile at 1000x | " + " | ".join(
                  f"G = {g}: tokens, bits/token, bits" for g in result["cubes"][0]["block_tokens"]) + " |",
              "|---|---|" + "---|" * len(result["cubes"][0]["block_tokens"])]
    for c in result["cubes"]:
        cells = [f"{v['tokens_per_tile']}, {v['bits_per_token']:.2f}, {v['bits_per_tile']}" for v in c["block_tokens"].values()]
        lines.append(f"| {c['cube']} | {c['tile_bits_at_1000x']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cubes", default=",".join(CUBES))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    t0 = time.perf_counter()
    cubes = []
    for name in args.cubes.split(","):
        row = bounds_for(name)
        row["reference"] = reference_rows(name)
        cubes.append(row)
        print(name, json.dumps(row["psnr_db"]), flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": cpu_model(),
              "wall_s": time.perf_counter() - t0, "cubes": cubes}
    out = Path(args.out)
    (out / "quality_bounds.json").write_text(json.dumps(result, indent=1))
    (out / "quality_bounds.md").write_text(to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
