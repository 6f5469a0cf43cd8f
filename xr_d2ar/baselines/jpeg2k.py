"""JPEG 2000 (OpenJPEG) and High-Throughput JPEG 2000 (OpenJPH), via ``imagecodecs``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xr_d2ar.baselines._base import BlockCodec

__all__ = ["HTJ2K", "JPEG2K"]

_INTEGERS = ("u1", "i1", "u2", "i2")


@dataclass(frozen=True)
class JPEG2K(BlockCodec):
    """JPEG 2000 Part 1, irreversible 9/7 wavelet, one bare J2K codestream per date.

    The date's bands are the components of one image (no multi-component transform): they share
    the headers and one rate allocation, which beat one codestream per band at every ratio on the
    sample cubes (docs/baselines.md). The knob is OpenJPEG's fixed-quality target in dB (PSNR
    against the full bit depth of the stored dtype): larger keeps more. Stored integers are coded
    as they are (signed or not).
    """

    name = "jpeg2k"
    package = "imagecodecs"
    param_name = "psnr_target_db"
    param_range = (20.0, 160.0)
    ratio_increases = False
    layout = "one multi-component (band, y, x) codestream per date, stored integers"
    block_ndim = 3
    native_dtypes = _INTEGERS
    takes_float = False

    def _encode(self, block: np.ndarray, param: float) -> bytes:
        lib = self._library()
        code = lib.jpeg2k_encode(
            block, level=param, reversible=False, codecformat="j2k", planar=block.ndim == 3,
            mct=False, numthreads=1,
        )
        return bytes(code)

    def _decode(self, stream: bytes, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self._library().jpeg2k_decode(stream, planar=len(shape) == 3, numthreads=1)


@dataclass(frozen=True)
class HTJ2K(JPEG2K):
    """High-Throughput JPEG 2000 (Part 15, OpenJPH), irreversible, one codestream per date.

    Bands are components, as for :class:`JPEG2K`.
    The knob is the quantisation step relative to the full bit depth: larger compresses more.
    """

    name = "htj2k"
    param_name = "quantisation_step"
    param_range = (1.0e-6, 4.0)
    ratio_increases = True

    def _encode(self, block: np.ndarray, param: float) -> bytes:
        code = self._library().htj2k_encode(
            block, level=param, reversible=False, planar=block.ndim == 3
        )
        return bytes(code)

    def _decode(self, stream: bytes, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self._library().htj2k_decode(stream, planar=len(shape) == 3)
