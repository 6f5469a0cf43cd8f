"""Dask encode throughput: compress a real cube into a token store with 1 and 2 worker processes.

    python benchmarks/dask_encode.py [--cube NAME] [--repeats 3] [--out benchmarks/results]

The cube is opened lazily (workers read the NetCDF file). Two ``distributed.LocalCluster`` (1 and 2
worker processes, one thread each) are started and warmed
up (every worker loads the prior once); ``cube.d2ar.compress(...).d2ar.to_zarr(...)`` is then
timed ``--repeats`` times on each, alternating (median reported). Throughput = source bytes /
wall seconds; scaling is reported
as the ratio of the 2-worker throughput to twice the 1-worker one (1.0 = linear). Results go to
``dask_encode.json`` and ``dask_encode.md``. Timings on shared machines vary: compare the ratios of
one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
from _machine import cpu_model


def _warm(client) -> None:
    """Load the prior once on every worker (not timed)."""
    from xr_d2ar.codecs import lookup
    from xr_d2ar.model import load_model

    sha = load_model().sha256
    client.run(lambda: lookup.find_model(sha).name)


def run(cube_name: str, repeats: int, chunks: dict[str, int], ratio: float) -> dict:
    """Time the encode with 1 and 2 workers; return the results."""
    from distributed import Client, LocalCluster

    import xr_d2ar.accessor  # noqa: F401
    from xr_d2ar import datasets

    cube = datasets.open(cube_name, chunks={})  # workers read the NetCDF file themselves
    nbytes = cube["reflectance"].nbytes
    scratch = Path(tempfile.mkdtemp(prefix="d2ar_bench_"))
    clusters = {
        n: LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        for n in (1, 2)
    }
    times: dict[int, list[float]] = {1: [], 2: []}
    try:
        clients = {n: Client(c) for n, c in clusters.items()}
        for client in clients.values():
            _warm(client)
        for i in range(repeats):  # alternate, so background load hits both alike
            for workers, client in clients.items():
                path = scratch / f"w{workers}-{i}.zarr"
                start = time.perf_counter()
                tokens = cube.d2ar.compress(ratio=ratio, chunks=chunks)
                sizes = tokens.d2ar.to_zarr(path, scheduler=client, progress=False)
                times[workers].append(time.perf_counter() - start)
                shutil.rmtree(path)
        for client in clients.values():
            client.close()
    finally:
        for cluster in clusters.values():
            cluster.close()
        cube.close()
        shutil.rmtree(scratch, ignore_errors=True)
    n_tiles = int(np.prod(tokens["tokens"].shape[:3]))
    rows = []
    for workers, walls in times.items():
        wall = statistics.median(walls)
        rows.append(
            {
                "workers": workers,
                "threads_per_worker": 1,
                "wall_s": wall,
                "walls_s": walls,
                "mb_per_s": nbytes / 1e6 / wall,
                "tiles_per_s": n_tiles / wall,
                "blocks": int(tokens["tokens"].data.npartitions),
                "token_ratio": sizes.token_ratio,
                "store_ratio": sizes.store_ratio,
            }
        )
    one, two = rows
    from xr_d2ar.model import load_model

    model = load_model()
    return {
        "benchmark": "dask_encode",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "load_avg_1min": os.getloadavg()[0],
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "cube": cube_name,
        "shape": list(cube["reflectance"].shape),
        "dtype": str(cube["reflectance"].dtype),
        "source_bytes": int(nbytes),
        "chunks": chunks,
        "target_ratio": ratio,
        "repeats": repeats,
        "prior": {"name": model.name, "sha256": model.sha256, "tile_size": model.tile_size},
        "rows": rows,
        "speedup_2_vs_1": two["mb_per_s"] / one["mb_per_s"],
        "fraction_of_linear": two["mb_per_s"] / (2 * one["mb_per_s"]),
    }


def markdown(result: dict) -> str:
    """The result as a Markdown section (for BENCHMARKS.md)."""
    m = result["machine"]
    lines = [
        "## Dask encode throughput (`benchmarks/dask_encode.py`)",
        "",
        (
            f"{result['date']}, {m['cpu']} ({m['cores']} cores, "
            f"1-min load average {m['load_avg_1min']:.1f} "
            f"at the end: the machine is shared), {m['platform']}, Python {m['python']}."
        ),
        (
            f"Cube `{result['cube']}` {' x '.join(map(str, result['shape']))} {result['dtype']} "
            f"({result['source_bytes'] / 1e6:.1f} MB), chunks {result['chunks']}, target ratio "
            f"{result['target_ratio']:g}, prior `{result['prior']['name']}` "
            f"({result['prior']['sha256'][:12]}), `distributed.LocalCluster` processes with one "
            f"thread each, compress + `to_zarr` (v3), median of {result['repeats']}, prior "
            "pre-loaded on workers, workers read the cube from its NetCDF file."
        ),
        "",
        "| workers | wall s | MB/s | tiles/s | blocks | ratio (tokens / store) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['workers']} | {r['wall_s']:.2f} | {r['mb_per_s']:.2f} | "
            f"{r['tiles_per_s']:.1f} | {r['blocks']} | "
            f"{r['token_ratio']:.0f}x / {r['store_ratio']:.0f}x |"
        )
    lines += [
        "",
        (
            f"2 workers vs 1: {result['speedup_2_vs_1']:.2f}x, "
            f"{100 * result['fraction_of_linear']:.0f} % of linear scaling."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cube", default="sentinel2_l1c_virginia_west")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ratio", type=float, default=1000.0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    result = run(args.cube, args.repeats, {"time": 1, "y": 256, "x": 256}, args.ratio)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dask_encode.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "dask_encode.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
