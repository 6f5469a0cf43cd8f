"""cext kernels: bit-exact CPU GEMM and the other ops CPU decoding needs.

The compiled library picks its best bit-exact backend at load time (SME, AVX-512, AVX2, or the
portable reference); ``XR_D2AR_KERNELS=ref|avx2|avx512|amx|sme|numpy`` or :func:`set_backend`
force one.  Every cext backend gives the same bits except AMX for bf16 (within fp32 accumulation
tolerance, hence never chosen automatically); ``numpy`` is a slow fallback that agrees within
tolerance only.  Kernels release the GIL, so threads over tiles run in parallel.
"""

from __future__ import annotations

from xr_d2ar.kernels._api import (
    ACTIVATIONS,
    ALIGN,
    activation,
    attention,
    conv2d,
    empty_aligned,
    from_bf16,
    gemm,
    group_norm,
    layer_norm,
    softmax,
    to_bf16,
    upsample_nearest,
)
from xr_d2ar.kernels._backend import BACKENDS, backend, backend_features, set_backend

__all__ = [
    "ACTIVATIONS",
    "ALIGN",
    "BACKENDS",
    "activation",
    "attention",
    "backend",
    "backend_features",
    "conv2d",
    "empty_aligned",
    "from_bf16",
    "gemm",
    "group_norm",
    "layer_norm",
    "set_backend",
    "softmax",
    "to_bf16",
    "upsample_nearest",
]
