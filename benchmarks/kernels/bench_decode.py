"""Decode throughput of the shipped prior on the CPU: cext runtime vs torch, same run.

Run::

    python benchmarks/kernels/bench_decode.py [--tiles 8] [--steps 8]
    python benchmarks/gpu/lite.py benchmarks/kernels/bench_decode.py --pack .gpu/pack   # no NetCDF stack

Tokens come from encoding real Sentinel-2 tiles (WorldCereal Flanders cube; with ``--pack``, its
held-out dates from a tile pack, for hosts without the NetCDF/geo stack).  Both engines use
every core (torch its intra-op threads, cext one thread per batch of tiles), run interleaved,
and keep their best time.  Writes ``benchmarks/results/kernels.decode.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from xr_d2ar import kernels, runtime
from xr_d2ar.model.api import load_model

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parents[0] / "results"


def _from_cube(_: str | None, t: int, n: int) -> tuple[np.ndarray, dict]:
    """n top-left tiles (n, B, t, t) of evenly spaced dates of the Flanders cube + decode kwargs."""
    from xr_d2ar import datasets

    ds = datasets.open("worldcereal_flanders_a_s2")
    times = np.linspace(0, ds.sizes["time"] - 1, n).astype(int)
    refl = datasets.to_reflectance(ds["reflectance"].isel(time=times, y=slice(0, t), x=slice(0, t))).values
    return refl, {
        "wavelength": ds.wavelength.values, "bandwidth": ds.bandwidth.values,
        "lat": np.full(n, float(ds.attrs["geospatial_lat_center"])),
        "lon": np.full(n, float(ds.attrs["geospatial_lon_center"])),
        "time": ds.time.values[times], "sensor": ds.sensor.values[times],
    }


def _from_pack(pack: str, t: int, n: int) -> tuple[np.ndarray, dict]:
    """The same from the held-out dates of the cube in a tile pack (numpy only)."""
    from xr_d2ar.train.data import load_pack

    src = next(s for s in load_pack(f"{pack}/holdout") if s.name == "worldcereal_flanders_a_s2")
    times = np.linspace(0, src.n_times - 1, n).astype(int)
    refl = np.stack([src.image(int(i))[0][:, :t, :t] for i in times])
    wl, bw = src.band_meta(0)
    return refl, {
        "wavelength": wl, "bandwidth": bw, "lat": np.full(n, float(np.mean(src.meta["lat"]))),
        "lon": np.full(n, float(np.mean(src.meta["lon"]))), "time": src.meta["time"][times],
        "sensor": src.meta["sensor"][times],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--pack", help="read the tiles from this tile pack instead of the cube")
    parser.add_argument("--threads", type=int, default=0, help="cores for both engines (0: every core)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))  # benchmarks/_machine.py
    from _machine import cpu_model

    model = load_model(device="cpu")
    t, n = model.tile_size, args.tiles
    refl, kw = (_from_pack if args.pack else _from_cube)(args.pack, t, n)
    kw |= {"tile_index": np.arange(n), "steps": args.steps}
    tokens = model.encode_tiles(refl.astype(np.float32), n_tokens=64,
                                **{k: v for k, v in kw.items() if k not in ("tile_index", "steps")})
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    batch = max(1, -(-n // threads))
    engines = {
        "torch": lambda: model.decode_tiles(tokens, **kw),
        "cext": lambda: runtime.decode_tiles(model, tokens, batch=batch, threads=threads, **kw),
    }
    best = {k: float("inf") for k in engines}
    outs = {k: f() for k, f in engines.items()}  # warm-up
    for _ in range(args.repeats):
        for name, f in engines.items():
            start = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - start)
    report = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": threads,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cext_backend": kernels.backend(),
        "prior": model.name,
        "tiles": n,
        "tile_size": t,
        "bands": int(refl.shape[1]),
        "tiles_from": f"tile pack {args.pack}" if args.pack else "sample cube",
        "steps": args.steps,
        "tiles_per_s": {k: n / v for k, v in best.items()},
        "ratio_cext_over_torch": best["torch"] / best["cext"],
        "max_abs_diff": float(np.abs(outs["cext"] - outs["torch"]).max()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels.decode.json").write_text(json.dumps(report, indent=2) + "\n")
    md = [
        "# Decode throughput of the shipped prior on the CPU (cext runtime vs torch)", "",
        (f"- date: {report['date']}; CPU: {report['cpu']} ({threads} cores); "
         f"torch {report['torch']} ({report['torch_threads']} threads); "
         f"cext backend {report['cext_backend']}"),
        (f"- prior {report['prior']}, {n} real tiles of {t}x{t} px x {report['bands']} bands, "
         f"{args.steps} Euler steps, best of {args.repeats} interleaved runs"), "",
        "| engine | tiles/s |", "|---|---|",
        *(f"| {k} | {v:.2f} |" for k, v in report["tiles_per_s"].items()), "",
        (f"cext / torch throughput: {report['ratio_cext_over_torch']:.2f}x; "
         f"max |cext - torch| = {report['max_abs_diff']:.2e} (reflectance)"), "",
    ]
    (args.out / "kernels.decode.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
