"""cext kernels: bit-exact CPU GEMM and the other ops CPU decoding needs.

The compiled library picks its best backend at load time (AMX, SME, AVX-512, AVX2, or the
portable reference); ``XR_D2AR_KERNELS=ref|avx2|avx512|amx|sme|numpy`` or :func:`set_backend`
force one.  Every cext backend gives the same bits; ``numpy`` is a slow fallback that agrees
within tolerance only.  Kernels release the GIL, so threads over tiles run in parallel.
"""

from __future__ import annotations

from xr_d2ar.kernels._api import (
    ACTIVATIONS,
    activation,
    attention,
    conv2d,
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
    "BACKENDS",
    "activation",
    "attention",
    "backend",
    "backend_features",
    "conv2d",
    "from_bf16",
    "gemm",
    "group_norm",
    "layer_norm",
    "set_backend",
    "softmax",
    "to_bf16",
    "upsample_nearest",
]
