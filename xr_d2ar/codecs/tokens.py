"""numcodecs codec ``xr_d2ar.tokens``: entropy-coded control tokens (Zarr v2, numcodecs users).

The config is JSON-only: the prior's sha256 (and its name, for messages). The frequency table is the
prior's ``token_model``, found per process by sha256 (:func:`xr_d2ar.codecs.lookup.find_model`), so
a fresh process or a Dask worker decodes without the model in the config or the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ndarray_copy

from xr_d2ar.codecs import payload
from xr_d2ar.codecs.lookup import find_model
from xr_d2ar.errors import ModelMismatchError

__all__ = ["TokenCodec", "decode_payload", "parse_model_name", "parse_model_sha256", "token_table"]

CODEC_ID = "xr_d2ar.tokens"


def parse_model_sha256(data: Any) -> str:
    """Check a hex sha256 (64 lower-case hex characters)."""
    if not isinstance(data, str):
        raise TypeError(f"model_sha256 must be a str. Got {type(data).__name__} instead.")
    if len(data) != 64 or any(c not in "0123456789abcdef" for c in data):
        raise ValueError(
            f"model_sha256 must be 64 lower-case hex characters. Got {data!r} instead."
        )
    return data


def parse_model_name(data: Any) -> str | None:
    """Check an optional model name."""
    if data is not None and not isinstance(data, str):
        raise TypeError(f"model_name must be a str or None. Got {type(data).__name__} instead.")
    return data


def token_table(sha256: str, name: str | None = None) -> np.ndarray:
    """The prior's per-position frequency table ``(K, codebook_size)``, by sha256."""
    return np.asarray(find_model(sha256, name=name).token_model)


def decode_payload(data: bytes, sha256: str, name: str | None = None) -> np.ndarray:
    """Decode a token payload, refusing one coded with a prior other than ``sha256``."""
    header = payload.read_header(data)
    if header.sha256 != sha256:
        raise ModelMismatchError(
            f"This chunk was coded with prior sha256 {header.sha256} but the array's codec "
            f"names {sha256} ({name or 'unnamed'}). Got a chunk copied from another store? "
            "Rewrite the store.",
            expected=sha256,
            got=header.sha256,
        )
    return payload.decode(data, token_table(sha256, name))


class TokenCodec(Codec):
    """Entropy-code integer token chunks ``(..., k)`` with a prior's token model (ANS).

    Parameters
    ----------
    model_sha256 : str
        Hex sha256 of the prior's weights file.
    model_name : str, optional
        The prior's name (for error messages).

    Examples
    --------
    >>> import numpy as np, xr_d2ar  # doctest: +SKIP
    >>> model = xr_d2ar.model.load_model()  # doctest: +SKIP
    >>> codec = TokenCodec(model.sha256, model_name=model.name)  # doctest: +SKIP
    >>> tokens = np.zeros((4, 2, 2, 8), np.int32)  # doctest: +SKIP
    >>> bool((codec.decode(codec.encode(tokens)) == tokens).all())  # doctest: +SKIP
    True
    """

    codec_id = CODEC_ID

    def __init__(self, model_sha256: str, model_name: str | None = None) -> None:
        self.model_sha256 = parse_model_sha256(model_sha256)
        self.model_name = parse_model_name(model_name)

    def encode(self, buf: Any) -> bytes:
        """Code an integer array whose last axis is the token position."""
        if not isinstance(buf, np.ndarray) or not np.issubdtype(buf.dtype, np.integer):
            raise TypeError(
                "TokenCodec.encode needs an integer numpy array with the token axis last. "
                f"Got {type(buf).__name__} {getattr(buf, 'dtype', '')} instead."
            )
        table = token_table(self.model_sha256, self.model_name)
        return payload.encode(buf, table, self.model_sha256)

    def decode(self, buf: Any, out: Any = None) -> np.ndarray:
        """Decode a payload (the model is taken from the payload's sha256)."""
        data = ensure_contiguous_ndarray(buf).view(np.uint8).tobytes()
        tokens = decode_payload(data, self.model_sha256, self.model_name)
        return ndarray_copy(tokens, out) if out is not None else tokens

    def __repr__(self) -> str:
        return f"TokenCodec(model_sha256={self.model_sha256!r}, model_name={self.model_name!r})"
