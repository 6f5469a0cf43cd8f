"""Dask decode of a token store: torch vs cext engine on a ``distributed.LocalCluster``.

    python benchmarks/dask_decode.py [--cube NAME] [--ratio 1000] [--repeats 3] [--out benchmarks/results]

The cube is compressed once into a local Zarr store. A ``LocalCluster`` of one single-thread
worker process per core is started; for each engine, every worker first loads the prior and
decodes once (warm-up), then ``xr.open_dataset(store, engine="d2ar", decode_engine=ENGINE,
chunks={})["reflectance"].compute()`` is timed ``--repeats`` times (median reported). Each task
decodes as the engine does by default: torch on its intra-op threads (1 in distributed's
workers: ``OMP_NUM_THREADS=1``), the cext runtime on a thread per core.

Results go to ``dask_decode.json`` and ``dask_decode.md``. Timings on shared machines vary:
compare the figures of one run only.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_machine.py
from _machine import cpu_model


def _store(cube_name: str, ratio: float, folder: Path) -> tuple[Path, int]:
    """Compress the cube (one chunk per date) into ``folder``; return the store and source bytes."""
    import xr_d2ar.accessor  # noqa: F401
    from xr_d2ar import datasets

    cube = datasets.open(cube_name)
    path = folder / f"{cube_name}.zarr"
    cube.d2ar.compress(ratio=ratio).d2ar.to_zarr(path, progress=False)
    return path, int(cube["reflectance"].nbytes)


def _decode(path: Path, engine: str) -> None:
    import xarray as xr

    xr.open_dataset(path, engine="d2ar", decode_engine=engine, chunks={})["reflectance"].compute()


def run(cube_name: str, ratio: float, repeats: int) -> dict:
    """Time the decode per engine and worker thread setting; return the results."""
    from distributed import Client, LocalCluster

    cores = os.cpu_count() or 1
    scratch = Path(tempfile.mkdtemp(prefix="d2ar_bench_"))
    rows = []
    try:
        path, nbytes = _store(cube_name, ratio, scratch)
        with LocalCluster(
            n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster, Client(cluster) as client:
            threads = client.run(lambda: __import__("torch").get_num_threads())
            for engine in ("torch", "cext"):
                _decode(path, engine)  # warm-up: every worker loads the prior
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    _decode(path, engine)
                    times.append(time.perf_counter() - start)
                rows.append({
                    "engine": engine, "worker_torch_threads": sorted(set(threads.values())),
                    "seconds": times, "median_s": statistics.median(times),
                    "mb_per_s": nbytes / 1e6 / statistics.median(times),
                })
                print(rows[-1], flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{cpu_model()} ({cores} cores, 1-min load average "
                   f"{os.getloadavg()[0]:.1f} at the end)",
        "platform": platform.platform(), "cube": cube_name, "ratio": ratio,
        "source_mb": nbytes / 1e6, "workers": cores, "repeats": repeats, "rows": rows,
    }


def to_markdown(r: dict) -> str:
    lines = [
        "# Dask decode of a token store, torch vs cext engine (`benchmarks/dask_decode.py`)", "",
        f"{r['date']}, {r['machine']}, {r['platform']}.",
        (f"Cube `{r['cube']}` ({r['source_mb']:.1f} MB) at {r['ratio']:g}x, one chunk per date; "
         f"`LocalCluster` of {r['workers']} single-thread worker processes; median of "
         f"{r['repeats']}, after a warm-up decode."), "",
        "| engine | torch threads in a worker | median s | MB/s |",
        "|---|---|---:|---:|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['engine']} | {row['worker_torch_threads']} "
                     f"| {row['median_s']:.2f} | {row['mb_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cube", default="sentinel2_l3a_bouconne")
    parser.add_argument("--ratio", type=float, default=1000.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    result = run(args.cube, args.ratio, args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dask_decode.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "dask_decode.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
