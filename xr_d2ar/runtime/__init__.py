"""CPU decode runtime: the prior's decoder (flow network + VAE decoder) on the cext kernels.

``runtime.decode_tiles(model, tokens, ...)`` is a drop-in for ``model.decode_tiles(tokens, ...)``
that is bit-identical across cext backends, batchings and thread counts.
"""

from __future__ import annotations

from xr_d2ar.runtime.decoder import CextDecoder, decode_tiles

__all__ = ["CextDecoder", "decode_tiles"]
