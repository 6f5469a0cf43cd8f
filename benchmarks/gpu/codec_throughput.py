"""Encode / decode throughput of a prior on real tiles (tiles/s and MB/s of original data).

Tiles are the full ``T x T`` windows of the images in a tile pack (``--split holdout`` by default).
Encode keeps all K tokens; decode uses the token count of ``--ratio`` and ``--steps`` Euler steps.
MB/s counts the original bytes (bands x T x T x source itemsize) of the tiles processed.

    python benchmarks/gpu/codec_throughput.py --prior runs/prior/d2ar-default.safetensors \
        --pack .gpu/pack --device cuda --out codec_gpu.json
    python benchmarks/gpu/codec_throughput.py ... --device cpu --threads 1 --out codec_cpu1.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from xr_d2ar.model.api import load_model
from xr_d2ar.train.data import load_pack


def real_tiles(pack: str, split: str, tile: int, cube: str, limit: int) -> tuple[dict, np.ndarray]:
    """Full tile windows of one cube of the pack: (meta, tiles (N, B, T, T) physical float32)."""
    src = next(s for s in load_pack(f"{pack}/{split}") if s.name == cube)
    tiles, rows = [], []
    for i in range(src.n_times):
        phys, _ = src.image(i)
        for y in range(0, src.ny - tile + 1, tile):
            for x in range(0, src.nx - tile + 1, tile):
                tiles.append(phys[:, y : y + tile, x : x + tile])
                rows.append(i)
    reps = int(np.ceil(limit / len(tiles)))
    idx = np.resize(np.arange(len(tiles)), min(limit, reps * len(tiles)))
    wl, bw = src.band_meta(0)
    meta = {
        "wavelength": wl, "bandwidth": bw, "time": src.meta["time"][np.array(rows)[idx]],
        "sensor": src.meta["sensor"][np.array(rows)[idx]], "lat": np.full(len(idx), src.meta["lat"].mean()),
        "lon": np.full(len(idx), src.meta["lon"].mean()),
        "itemsize": int(np.asarray(src.arrays["reflectance"]).dtype.itemsize),
    }
    return meta, np.stack(tiles)[idx].astype(np.float32)


def cpu_model() -> str:
    """CPU model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def rate(fn, *, sync: bool, min_s: float = 3.0) -> tuple[float, int]:
    """Calls per second of ``fn`` (one warm-up call, then repeated for at least ``min_s``)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if sync:
            torch.cuda.synchronize()
        if time.perf_counter() - t0 > min_s:
            return n / (time.perf_counter() - t0), n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prior", required=True)
    ap.add_argument("--pack", required=True)
    ap.add_argument("--split", default="holdout")
    ap.add_argument("--cube", default="worldcereal_flanders_a_s2")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    ap.add_argument("--tiles", type=int, default=1024)
    ap.add_argument("--ratio", type=float, default=1000.0)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.prior, device=args.device)
    meta, tiles = real_tiles(args.pack, args.split, model.tile_size, args.cube, args.tiles)
    n, b = tiles.shape[:2]
    k = model.tokens_for_ratio(args.ratio, n_bands=b, itemsize=meta["itemsize"])
    common = {key: meta[key] for key in ("wavelength", "bandwidth", "lat", "lon", "time", "sensor")}
    sync = args.device.startswith("cuda")
    tokens = model.encode_tiles(tiles, n_tokens=model.n_tokens, **common)
    enc_calls, _ = rate(lambda: model.encode_tiles(tiles, n_tokens=model.n_tokens, **common), sync=sync)
    dec_calls, _ = rate(lambda: model.decode_tiles(tokens[:, :k], tile_index=np.arange(n), steps=args.steps,
                                                   **common), sync=sync)
    tile_mb = b * model.tile_size**2 * meta["itemsize"] / 1e6
    out = {
        "device": torch.cuda.get_device_name() if sync else cpu_model(),
        "threads": torch.get_num_threads() if not sync else None, "cube": args.cube, "tiles_per_call": n,
        "bands": b, "tile": model.tile_size, "itemsize": meta["itemsize"], "ratio": args.ratio, "tokens": k,
        "steps": args.steps, "prior_sha256": model.sha256, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "encode_tiles_per_s": enc_calls * n, "encode_mb_per_s": enc_calls * n * tile_mb,
        "decode_tiles_per_s": dec_calls * n, "decode_mb_per_s": dec_calls * n * tile_mb,
    }
    print(json.dumps(out))
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
