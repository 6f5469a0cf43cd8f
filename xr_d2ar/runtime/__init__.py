"""CPU decode runtime: the prior's decoder (flow network + VAE decoder) on the cext kernels.

``runtime.decode_tiles(model, tokens, ...)`` is a drop-in for ``model.decode_tiles(tokens, ...)``
that is bit-identical across cext backends, batchings and thread counts.
"""

from __future__ import annotations

from typing import Any

from xr_d2ar import kernels
from xr_d2ar.errors import KernelError
from xr_d2ar.runtime.decoder import CextDecoder, decode_tiles

__all__ = ["FASTER_THAN_TORCH", "CextDecoder", "decode_tiles", "preferred"]

#: cext backends on which the runtime decoded at least as fast as torch on the same CPU, measured
#: (``benchmarks/kernels/bench_decode.py``; BENCHMARKS.md section 4): AVX2, 1.15-1.57x on a
#: 2-core AMD EPYC.  Not AVX-512 (a Xeon: 0.93-1.07x on one core, 0.68-0.78x on 16); SME hosts
#: are not measured, so ``auto`` keeps torch there.
FASTER_THAN_TORCH = ("avx2",)


def preferred(model: Any) -> bool:
    """True when the ``auto`` decode engine should use this runtime for ``model``: the model is on
    the CPU and this CPU's kernel backend is one of :data:`FASTER_THAN_TORCH` (False when the
    compiled kernels are missing or ``XR_D2AR_KERNELS`` is invalid: torch decodes then).

    Decided in each process: on a cluster of mixed hosts, chunks may come from different engines
    (within float32 rounding of each other); ``engine="cext"`` gives the same bits everywhere.
    """
    if not str(getattr(model, "device", "cpu")).startswith("cpu"):
        return False
    try:
        return kernels.backend() in FASTER_THAN_TORCH
    except KernelError:
        return False
