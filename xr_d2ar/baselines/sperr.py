"""SPERR (via ``imagecodecs``): wavelet coding with SPECK, in its rate (bits-per-value) mode."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xr_d2ar.baselines._base import BlockCodec

__all__ = ["SPERR"]

#: Smallest bit budget given to SPERR for one block (bits).
MIN_BITS = 64


@dataclass(frozen=True)
class SPERR(BlockCodec):
    """SPERR on each date's ``(band, y, x)`` block, size-bounded (``bpp``) mode.

    The knob is the target bits per value (smaller compresses more). The rate mode is SPERR's
    best at a given size; its point-wise-error mode spends bits on outlier correction. SPERR
    ignores a budget under about one bit per block and then codes losslessly, so the budget is
    floored at ``MIN_BITS`` bits per block (the ratio saturates instead of collapsing).
    """

    name = "sperr"
    package = "imagecodecs"
    param_name = "bits_per_value"
    param_range = (1.0e-4, 16.0)
    ratio_increases = False
    layout = "one (band, y, x) block per date (2-D for one band), float32 of the stored values"
    block_ndim = 3

    def _encode(self, block: np.ndarray, param: float) -> bytes:
        bpp = max(param, MIN_BITS / block.size)
        return bytes(self._library().sperr_encode(block, bpp, "bpp", numthreads=1))

    def _decode(self, stream: bytes, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self._library().sperr_decode(stream, numthreads=1)
