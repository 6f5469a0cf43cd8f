"""JPEG XL (libjxl, via ``imagecodecs``), lossy VarDCT on one grey image at a time."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from xr_d2ar.baselines._base import BlockCodec

__all__ = ["JPEGXL"]


@dataclass(frozen=True)
class JPEGXL(BlockCodec):
    """JPEG XL lossy grey image per ``(y, x)`` image, default effort.

    The knob is the Butteraugli distance (larger compresses more). JPEG XL takes unsigned 8/16-bit
    images, so each image is shifted by its minimum (4 bytes per image, counted) to uint16.
    """

    name = "jpegxl"
    package = "imagecodecs"
    param_name = "distance"
    param_range = (0.01, 25.0)
    ratio_increases = True
    layout = "one (y, x) image per (time, band), stored integers minus the image minimum, uint16"
    native_dtypes = ("u1", "i1", "u2", "i2")
    takes_float = False

    def _encode(self, block: np.ndarray, param: float) -> bytes:
        lo = int(block.min())
        shifted = (block.astype(np.int64) - lo).astype(np.uint16)  # 16-bit inputs: range fits
        code = self._library().jpegxl_encode(shifted, distance=param, numthreads=1)
        return struct.pack("<i", lo) + bytes(code)

    def _decode(self, stream: bytes, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        (lo,) = struct.unpack("<i", stream[:4])
        return self._library().jpegxl_decode(stream[4:], numthreads=1).astype(np.int64) + lo
