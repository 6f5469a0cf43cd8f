"""CPU decode runtime: the prior's decoder (flow network + VAE decoder) on the cext kernels.

``runtime.decode_tiles(model, tokens, ...)`` is a drop-in for ``model.decode_tiles(tokens, ...)``
that is bit-identical across cext backends, batchings and thread counts.
"""

from __future__ import annotations

from typing import Any

from xr_d2ar import kernels
from xr_d2ar.errors import KernelError
from xr_d2ar.runtime.decoder import CextDecoder, decode_tiles, usable_cores

__all__ = [
    "FASTER_FROM_TILES_PER_THREAD", "FASTER_THAN_TORCH", "CextDecoder", "decode_tiles", "preferred",
    "usable_cores",
]

#: cext backends on which the runtime decoded at least as fast as torch on the same CPU whatever
#: the work, measured (``benchmarks/kernels/bench_decode.py``; BENCHMARKS.md section 4): AVX2,
#: 1.15-1.57x on a 2-core AMD EPYC.  SME hosts are not measured, so ``auto`` keeps torch there.
FASTER_THAN_TORCH = ("avx2",)

#: cext backends on which the runtime is the faster once a decode call has this many tiles per
#: torch thread, on a machine of several cores: AVX-512 on a 16-core Xeon (2026-11-29) 1.10-1.51x
#: torch with 4-16 tiles per thread, 0.82x with 2, 0.94x on one core with torch on one thread.
FASTER_FROM_TILES_PER_THREAD = {"avx512": 4}


def preferred(model: Any, n_tiles: int | None = None) -> bool:
    """True when the ``auto`` decode engine should use this runtime for ``model`` decoding
    ``n_tiles`` tiles per call: the model is on the CPU and this CPU's kernel backend is one of
    :data:`FASTER_THAN_TORCH`, or one of :data:`FASTER_FROM_TILES_PER_THREAD` with that many tiles
    per torch thread (``torch.get_num_threads()``) on a machine of two cores or more. False when
    the compiled kernels are missing or ``XR_D2AR_KERNELS`` is invalid: torch decodes then.

    Decided in each process and, on AVX-512, for each call: on a cluster of mixed hosts, or for
    small edge chunks or selections, tiles may come from different engines (within float32
    rounding of each other, as torch's own batch sizes are); ``engine="cext"`` gives the same
    bits everywhere.
    """
    if not str(getattr(model, "device", "cpu")).startswith("cpu"):
        return False
    try:
        backend = kernels.backend()
    except KernelError:
        return False
    if backend in FASTER_THAN_TORCH:
        return True
    per_thread = FASTER_FROM_TILES_PER_THREAD.get(backend)
    if per_thread is None or n_tiles is None or usable_cores() < 2:
        return False
    import torch

    return n_tiles >= per_thread * torch.get_num_threads()
