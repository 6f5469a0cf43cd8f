"""Codecs of xr_d2ar: entropy-coded control tokens for numcodecs (zarr v2) and zarr v3.

Both are registered here for in-process use and through the ``numcodecs.codecs`` / ``zarr.codecs``
entry points, so a fresh process opens a token store without importing xr_d2ar first.
"""

from __future__ import annotations

from numcodecs.registry import register_codec as _register_numcodec
from zarr.registry import register_codec as _register_zarr_codec

from xr_d2ar.codecs.tokens import CODEC_ID, TokenCodec
from xr_d2ar.codecs.zarr3 import TokenCodecV3

__all__ = ["CODEC_ID", "TokenCodec", "TokenCodecV3"]

_register_numcodec(TokenCodec)
_register_zarr_codec(CODEC_ID, TokenCodecV3)
