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
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import threadpoolctl
import torch

from xr_d2ar import kernels

RESULTS = Path(__file__).resolve().parents[1] / "results"


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_times(cands: dict[str, Callable[[], object]], repeats: int, budget: float) -> dict:
    """Best wall time (s) of each candidate, calls interleaved round-robin."""
    best = {k: float("inf") for k in cands}
    for f in cands.values():
        f()  # warm up (page faults, AMX permission, oneDNN JIT)
    start = time.perf_counter()
    for _ in range(repeats):
        for name, f in cands.items():
            t = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t)
        if time.perf_counter() - start > budget:
            break
    return best


def bench_shape(m: int, n: int, k: int, repeats: int, budget: float) -> dict[str, float]:
    """GFLOP/s of each candidate for one (M, N, K)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    a16, b16 = kernels.to_bf16(a), kernels.to_bf16(b)
    out = np.empty((m, n), np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ta16, tb16 = ta.to(torch.bfloat16), tb.to(torch.bfloat16)
    cands: dict[str, Callable[[], object]] = {
        "numpy fp32": lambda: a @ b,
        "torch fp32": lambda: ta @ tb,
        "torch bf16": lambda: ta16 @ tb16,
    }

    def on(name: str, x: np.ndarray, y: np.ndarray) -> Callable[[], object]:
        def run() -> object:
            kernels.set_backend(name)
            return kernels.gemm(x, y, out=out)
        return run

    for name in kernels.backend_features()["available"]:
        cands[f"cext-{name} fp32"] = on(name, a, b)
        cands[f"cext-{name} bf16"] = on(name, a16, b16)
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


def to_markdown(report: dict) -> str:
    """One machine's section of kernels.md."""
    lines = [
        f"## {report['cpu']}",
        "",
        f"- date: {report['date']}",
        f"- CPU: {report['cpu']} ({report['machine']})",
        f"- numpy BLAS: {report['numpy_blas']}; OPENBLAS_CORETYPE={report['openblas_coretype']}",
        f"- torch {report['torch']}, mkldnn={report['torch_mkldnn']}",
        f"- cext backends available: {', '.join(report['available'])}",
        "",
    ]
    names = list(next(iter(report["shapes"].values())))
    lines.append("| M x N x K | " + " | ".join(names) + " |")
    lines.append("|---" * (len(names) + 1) + "|")
    for shape, row in report["shapes"].items():
        lines.append(f"| {shape} | " + " | ".join(f"{row[n]:.1f}" for n in names) + " |")
    lines += ["", "GFLOP/s (best of interleaved repeats). Ratios:", ""]
    for key, val in ratios(report).items():
        lines.append(f"- {key}: {val:.2f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per shape, at most")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    threadpoolctl.threadpool_limits(1)
    torch.set_num_threads(1)
    shapes = [(s, s, s) for s in args.sizes] + [(1024, 64, 576)]  # + a 3x3 conv as GEMM
    report: dict = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "numpy_blas": numpy_blas(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "torch": torch.__version__,
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
        "available": kernels.backend_features()["available"],
        "threads": 1,
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
