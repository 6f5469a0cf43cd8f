"""GEMM cache blocking of one cext backend against numpy (OpenBLAS), called from Python.

The C harness ``gemm_blocking.c`` calls OpenBLAS and cext from a small C program; the library's
users call it from Python, next to numpy, where the same AVX-512 kernel compared 5-8% worse at
1024^3 (BENCHMARKS.md section 6).  This script builds the kernel sources with their internal
symbols exported (``-DD2AR_HIDDEN=``, into a temporary folder, nothing installed), sets each
blocking through the internal hook ``d2ar__gemm_tune`` and times it through ctypes, interleaved
with ``numpy.matmul`` on the same operands, one thread, best of REPEATS rounds.

Run from the repository root (needs gcc)::

    env -u OPENBLAS_CORETYPE taskset -c 1 python benchmarks/kernels/gemm_blocking_py.py \\
        --backend avx512 --blocking 384/144/2048 768/96/2048 --shapes 1024x1024x1024 512x512x512

Prints, per shape, cext time / numpy time as a speed ratio for each ``kc/mc/nc`` (A read in place
for N <= 320 throughout); results do not depend on the blocking, only speed does.
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import threadpoolctl

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = {"avx2": 1, "avx512": 2}


def build(out: Path) -> ctypes.CDLL:
    """The kernel library with its internal symbols visible, as a shared object in ``out``."""
    sources = [ROOT / "cext/src/dispatch.c", *sorted((ROOT / "cext/kernels").glob("*/*.c"))]
    lib = out / "libd2ar_tune.so"
    subprocess.run(["gcc", "-O2", "-std=gnu11", "-ffp-contract=off", "-fno-math-errno", "-fPIC",
                    "-shared", "-DD2AR_HIDDEN=", f"-I{ROOT / 'cext/include'}", *map(str, sources),
                    "-lm", "-lpthread", "-o", str(lib)], check=True)
    return ctypes.CDLL(str(lib))


def ratios(lib: ctypes.CDLL, backend: int, shape: tuple[int, int, int],
           blockings: list[tuple[int, int, int]], repeats: int) -> dict[str, float]:
    """numpy time / cext time (speed ratio) per blocking for one (M, N, K), float32."""
    m, n, k = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out_np, out = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
    i64, ptr = ctypes.c_int64, ctypes.c_void_p

    def cext(kc: int, mc: int, nc: int):
        def run() -> None:
            if lib.d2ar__gemm_tune(backend, 0, i64(kc), i64(mc), i64(nc), i64(320)):
                raise RuntimeError(f"d2ar__gemm_tune refused {kc}/{mc}/{nc}")
            code = lib.d2ar_gemm_f32(i64(m), i64(n), i64(k), ptr(a.ctypes.data), i64(k), i64(1),
                                     ptr(b.ctypes.data), i64(n), i64(1), None, 0, 0,
                                     ptr(out.ctypes.data), i64(n))
            if code:
                raise RuntimeError(f"d2ar_gemm_f32 returned {code}")
        return run

    cands = {"numpy": lambda: np.matmul(a, b, out=out_np)}
    cands.update({f"{kc}/{mc}/{nc}": cext(kc, mc, nc) for kc, mc, nc in blockings})
    best = dict.fromkeys(cands, float("inf"))
    for _ in range(repeats):
        for name, fn in cands.items():
            fn()  # untimed: every candidate is timed with its own data in cache
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    if not np.allclose(out, out_np, rtol=1e-4, atol=1e-3):
        raise RuntimeError("cext and numpy disagree: the build is broken")
    return {name: best["numpy"] / t for name, t in best.items() if name != "numpy"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="avx512")
    parser.add_argument("--blocking", nargs="+", default=["384/144/2048", "768/96/2048"],
                        help="kc/mc/nc candidates")
    parser.add_argument("--shapes", nargs="+",
                        default=["1024x1024x1024", "512x512x512", "256x256x256", "1024x64x576",
                                 "4096x128x1152"], help="MxNxK")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    blockings = [tuple(int(v) for v in s.split("/")) for s in args.blocking]
    threadpoolctl.threadpool_limits(1)
    with tempfile.TemporaryDirectory() as tmp:
        lib = build(Path(tmp))
        if lib.d2ar_set_backend(BACKENDS[args.backend]):
            raise SystemExit(f"backend {args.backend} is not available on this CPU")
        for s in args.shapes:
            shape = tuple(int(v) for v in s.split("x"))
            row = ratios(lib, BACKENDS[args.backend], shape, blockings, args.repeats)
            print(s, " ".join(f"{name}: {r:.3f}" for name, r in row.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
