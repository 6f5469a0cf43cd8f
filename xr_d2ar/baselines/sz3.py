"""SZ3 (via ``pysz``): prediction-based, error-bounded lossy coding of one date at a time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xr_d2ar.baselines._base import BlockCodec

__all__ = ["SZ3"]


@dataclass(frozen=True)
class SZ3(BlockCodec):
    """SZ3 in absolute-error-bound mode on each date's ``(band, y, x)`` block.

    The knob is the absolute error bound in stored units (e.g. 10 = 0.001 reflectance for a
    scale factor of 1e-4); after rounding to the stored integers the error is at most bound + 0.5.
    Single-threaded (OpenMP off).
    """

    name = "sz3"
    package = "pysz"
    param_name = "abs_error_bound"
    param_range = (0.25, 1.0e6)
    ratio_increases = True
    layout = "one (band, y, x) block per date (2-D for one band), float32 of the stored values"
    block_ndim = 3

    def _encode(self, block: np.ndarray, param: float) -> bytes:
        pysz = self._library()
        conf = pysz.szConfig()
        conf.errorBoundMode = pysz.szErrorBoundMode.ABS
        conf.absErrorBound = param
        conf.openmp = False
        compressed, _ = pysz.sz.compress(block, conf)
        return compressed.tobytes()

    def _decode(self, stream: bytes, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        pysz = self._library()
        values, _ = pysz.sz.decompress(np.frombuffer(stream, np.uint8), np.float32, shape)
        return values
