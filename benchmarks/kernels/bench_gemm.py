"""GEMM throughput of every cext backend vs numpy (OpenBLAS) and torch (oneDNN), one thread.

Run (OpenBLAS core-type overrides are unset for this command only, see docs/kernels.md)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/kernels/bench_gemm.py

All candidates run interleaved in the same process, repeated, and each keeps its best time, so
the ratios hold even on a busy shared machine.  Writes ``benchmarks/results/kernels.json`` and
``kernels.md`` (GFLOP/s, ratios, CPU model, date, which BLAS kernel numpy used).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import random
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import threadpoolctl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_machine.py
from _machine import cpu_details, cpu_model

RESULTS = Path(__file__).resolve().parents[1] / "results"


def import_kernels() -> types.ModuleType:
    """``xr_d2ar.kernels`` alone: numpy and the compiled cext only, not the package's
    xarray/Dask/Zarr stack (absent on the GPU host, whose Xeon has AVX-512 and AMX)."""
    if "xr_d2ar" not in sys.modules:
        spec = importlib.util.find_spec("xr_d2ar")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("xr_d2ar not found: pip install -e . or set PYTHONPATH")
        pkg = types.ModuleType("xr_d2ar")  # a bare parent: its __init__ is not run
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["xr_d2ar"] = pkg
    import xr_d2ar.kernels

    return xr_d2ar.kernels


kernels = import_kernels()


#: Candidates timed in the first rounds only: the scalar reference is 100x slower than the rest
#: and would otherwise use up the time budget, leaving the candidates compared too few rounds.
SLOW_ROUNDS = 3


def best_times(cands: dict[str, Callable[[], object]], repeats: int, budget: float) -> dict:
    """Best wall time (s) of each candidate, interleaved round-robin (the ``cext-ref`` ones only
    in the first SLOW_ROUNDS rounds), in a new random order each round.  Each timed call
    directly follows an untimed call of the same candidate, so every candidate is timed with its
    own operands in cache rather than after whichever candidate happened to run before it."""
    best = {k: float("inf") for k in cands}
    for f in cands.values():
        f()  # warm up (page faults, AMX permission, oneDNN JIT)
    order, shuffle = list(cands), random.Random(0).shuffle
    start = time.perf_counter()
    for rnd in range(repeats):
        shuffle(order)  # no candidate always follows the same one (e.g. a slow bf16 matmul)
        for name in order:
            f = cands[name]
            slow = name.startswith("cext-ref")
            if rnd >= SLOW_ROUNDS and slow:
                continue
            if not slow:
                f()
            t = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t)
        if rnd >= SLOW_ROUNDS and time.perf_counter() - start > budget:
            break
    return best


#: Every candidate's output is cache-line aligned (kernels.empty_aligned): torch's allocator
#: aligns to 64 bytes, numpy's arrays start wherever malloc puts them, and a C tile row that
#: straddles two cache lines made the AMX GEMM 10-20% slower ("C +16 B" column).
ALIGN = kernels.ALIGN
empty_aligned = kernels.empty_aligned


def bench_shape(m: int, n: int, k: int, repeats: int, budget: float) -> dict[str, float]:
    """GFLOP/s of each candidate for one (M, N, K)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    a16, b16 = kernels.to_bf16(a), kernels.to_bf16(b)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ta16, tb16 = ta.to(torch.bfloat16), tb.to(torch.bfloat16)
    # every candidate writes into a preallocated, cache-line aligned output, as cext does
    out, out_np = empty_aligned((m, n)), empty_aligned((m, n))
    t_out = torch.from_numpy(empty_aligned((m, n)))
    t_out16 = torch.empty((m, n), dtype=torch.bfloat16)
    if t_out16.data_ptr() % ALIGN:
        raise RuntimeError("torch's bf16 output is not cache-line aligned: an unfair comparison")
    cands: dict[str, Callable[[], object]] = {
        "numpy fp32": lambda: np.matmul(a, b, out=out_np),
        "torch fp32": lambda: torch.matmul(ta, tb, out=t_out),
        "torch bf16": lambda: torch.matmul(ta16, tb16, out=t_out16),
    }

    def on(name: str, x: np.ndarray, y: np.ndarray, c: np.ndarray = out) -> Callable[[], object]:
        def run() -> object:
            kernels.set_backend(name)
            return kernels.gemm(x, y, out=c)
        return run

    available = kernels.backend_features()["available"]
    for name in available:
        cands[f"cext-{name} fp32"] = on(name, a, b)
        cands[f"cext-{name} bf16"] = on(name, a16, b16)
    if "amx" in available:  # what a misaligned output costs (a numpy array may start so)
        cands["cext-amx bf16, C +16 B"] = on("amx", a16, b16, empty_aligned((m, n), offset=16))
    times = best_times(cands, repeats, budget)
    return {name: 2.0 * m * n * k / t / 1e9 for name, t in times.items()}


def numpy_blas() -> dict:
    """The BLAS numpy calls and its core type (kernel), as threadpoolctl reports it."""
    info = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    return {k: info[0].get(k) for k in ("internal_api", "version", "architecture")} if info else {}


def ratios(report: dict) -> dict[str, float]:
    """Targets as ratios: best bit-exact cext fp32 / numpy, and cext bf16 (best, and AMX if
    present) / torch bf16, per shape."""
    best, out = report["best_backend"], {}
    for shape, row in report["shapes"].items():
        out[f"{shape} cext-{best} fp32 / numpy fp32"] = row[f"cext-{best} fp32"] / row["numpy fp32"]
        for name in dict.fromkeys([best, "amx"]):
            if f"cext-{name} bf16" in row:
                out[f"{shape} cext-{name} bf16 / torch bf16"] = (
                    row[f"cext-{name} bf16"] / row["torch bf16"])
    return out


def _details(report: dict) -> str:
    d = report.get("cpu_details")
    if not d:
        return "details not recorded"
    return (f"{d['vendor']} family {d['family']} model {d['model']} stepping {d['stepping']}, "
            f"{d['logical_cpus']} logical CPUs, flags: {' '.join(d['flags'])}")


def to_markdown(report: dict) -> str:
    """One machine's section of kernels.md."""
    lines = [
        f"## {report['cpu']}",
        "",
        f"- date: {report['date']}",
        f"- CPU: {report['cpu']} ({report['machine']}); {_details(report)}",
        (f"- command: `{report.get('command', 'python benchmarks/kernels/bench_gemm.py')}`, "
         f"{report['threads']} thread for every candidate (numpy/OpenBLAS, torch, cext)"),
        f"- numpy BLAS: {report['numpy_blas']}; OPENBLAS_CORETYPE={report['openblas_coretype']}",
        f"- torch {report['torch']}, mkldnn={report['torch_mkldnn']}",
        f"- cext backends available: {', '.join(report['available'])}",
        *([f"- note: {report['note']}"] if report.get("note") else []),
        "",
    ]
    names = list(next(iter(report["shapes"].values())))
    lines.append("| M x N x K | " + " | ".join(names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    for shape, row in report["shapes"].items():
        lines.append(f"| {shape} | " + " | ".join(f"{row[n]:.1f}" for n in names) + " |")
    if "repeats" in report:
        method = (f"best of up to {report['repeats']} interleaved rounds in shuffled order, "
                  "each timed call right after an untimed call of the same candidate, outputs "
                  "preallocated")
        if "output_align" in report:
            method += (f" and {report['output_align']}-byte aligned (\"C +16 B\": 16 bytes "
                       "past)")
        method += f"; cext-ref: first {SLOW_ROUNDS} rounds only"
    else:  # runs recorded before the method was written down
        method = "best of interleaved repeats"
    lines += ["", f"GFLOP/s ({method}). Ratios:", ""]
    for key, val in ratios(report).items():
        lines.append(f"- {key}: {val:.2f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--budget", type=float, default=25.0, help="seconds per shape, at most")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    threadpoolctl.threadpool_limits(1)
    torch.set_num_threads(1)
    shapes = [(s, s, s) for s in args.sizes] + [(1024, 64, 576)]  # + a 3x3 conv as GEMM
    report: dict = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpu_details": cpu_details(),
        "machine": platform.machine(),
        "command": " ".join(["python", "benchmarks/kernels/bench_gemm.py", *sys.argv[1:]]),
        "numpy_blas": numpy_blas(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "torch": torch.__version__,
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "available": kernels.backend_features()["available"],
        "threads": 1,
        "repeats": args.repeats,
        "output_align": ALIGN,
        "shapes": {},
    }
    report["best_backend"] = kernels.backend()
    for m, n, k in shapes:
        report["shapes"][f"{m}x{n}x{k}"] = bench_shape(m, n, k, args.repeats, args.budget)
    kernels.set_backend(report["best_backend"])
    report["ratios"] = ratios(report)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "kernels.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else []
    runs = [r for r in runs if r["cpu"] != report["cpu"]] + [report]  # one run per CPU model
    path.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    header = "# cext GEMM benchmark (single thread), one section per CPU\n\n"
    (args.out / "kernels.md").write_text(header + "\n".join(to_markdown(r) for r in runs))
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
