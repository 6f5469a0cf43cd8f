"""Native zarr-v3 codec ``xr_d2ar.tokens`` (array -> bytes): entropy-coded control tokens.

Same payload and config as the numcodecs :class:`~xr_d2ar.codecs.tokens.TokenCodec`. The work runs
in ``_encode_sync`` / ``_decode_sync``; the async hooks hand it to a thread, never to zarr's event
loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.common import parse_named_configuration

from xr_d2ar.codecs import payload
from xr_d2ar.codecs.tokens import (
    CODEC_ID,
    decode_payload,
    parse_model_name,
    parse_model_sha256,
    token_table,
)
from xr_d2ar.errors import ChunkAlignmentError

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType

__all__ = ["TokenCodecV3"]


@dataclass(frozen=True)
class TokenCodecV3(ArrayBytesCodec):
    """Entropy-code integer token chunks ``(..., k)`` with a prior's token model (zarr v3).

    Parameters
    ----------
    model_sha256 : str
        Hex sha256 of the prior's weights file.
    model_name : str, optional
        The prior's name (for error messages).
    """

    is_fixed_size = False

    model_sha256: str
    model_name: str | None

    def __init__(self, *, model_sha256: str, model_name: str | None = None) -> None:
        object.__setattr__(self, "model_sha256", parse_model_sha256(model_sha256))
        object.__setattr__(self, "model_name", parse_model_name(model_name))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        _, configuration = parse_named_configuration(data, CODEC_ID)
        return cls(**configuration)

    def to_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {"model_sha256": self.model_sha256}
        if self.model_name is not None:
            config["model_name"] = self.model_name
        return {"name": CODEC_ID, "configuration": config}

    def validate(
        self,
        *,
        shape: tuple[int, ...],
        dtype: ZDType[TBaseDType, TBaseScalar],
        chunk_grid: ChunkGrid,
    ) -> None:
        """Reject non-integer arrays and chunks that split the token axis."""
        native = dtype.to_native_dtype()
        if not np.issubdtype(native, np.integer):
            raise TypeError(f"{CODEC_ID} codes integer tokens. Got dtype {native} instead.")
        if not shape:
            raise ValueError(f"{CODEC_ID} needs an array with a token axis last. Got a 0-d array.")
        regular = isinstance(chunk_grid, RegularChunkGrid)
        if regular and shape[-1] and chunk_grid.chunk_shape[-1] != shape[-1]:  # k = 0: no chunks
            raise ChunkAlignmentError(
                f"{CODEC_ID} needs the whole token axis ({shape[-1]}) in every chunk. Got chunk "
                f"shape {chunk_grid.chunk_shape} instead. Set the last chunk size to {shape[-1]}."
            )

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        tokens = np.ascontiguousarray(chunk_array.as_numpy_array())
        table = token_table(self.model_sha256, self.model_name)
        return chunk_spec.prototype.buffer.from_bytes(
            payload.encode(tokens, table, self.model_sha256)
        )

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        tokens = decode_payload(chunk_bytes.to_bytes(), self.model_sha256, self.model_name)
        if tokens.shape != chunk_spec.shape:
            raise ValueError(
                f"Token chunk has shape {tokens.shape}; the array expects {chunk_spec.shape}. "
                "The store is damaged or was rewritten with other chunks."
            )
        native = chunk_spec.dtype.to_native_dtype()
        return chunk_spec.prototype.nd_buffer.from_numpy_array(tokens.astype(native, copy=False))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, _input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        raise NotImplementedError(
            "xr_d2ar.tokens is a variable-size entropy codec: its encoded size is known only "
            "after encoding, so it cannot sit inside a zarr sharding codec. Store the tokens "
            "unsharded (tokens.d2ar.encoding() does)."
        )
