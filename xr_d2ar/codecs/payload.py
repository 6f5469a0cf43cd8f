"""Self-describing chunk payload of entropy-coded control tokens (ANS via ``constriction``).

Layout of one payload (all integers little-endian)::

    offset  size       field
    0       4          magic b"D2AT"
    4       1          format version (1)
    5       1          ndim
    6       2          mode: 0 = the token model, 1 = flat (uniform over the codebook)
    8       4          token dtype, numpy ``dtype.str`` padded with NUL (e.g. b"<i4\\0")
    12      32         sha256 of the prior whose token model coded the chunk (raw bytes)
    44      4 * ndim   shape, uint32 each; the last axis is the token position (coarse -> fine)
    ..      4 * (ndim - 1)  version 2 only: the extent coded along each tile axis, uint32 each
    ..      4          number of ANS words W (uint32)
    ..      4 * W      ANS words (uint32)

Version 2 codes only the block ``[:e_0, ..., :e_{ndim-2}]`` and leaves the tiles past it out:
they are all token 0, which is what Zarr pads an edge chunk with (the token array's fill value),
and decode gives them back as 0, so nothing is lost whatever they were. A chunk without trailing
all-zero tiles is written as version 1 (the layout above without the extents), as before.

Token ``j`` of every tile is coded with row ``j`` of the prior's integer frequency table
``token_model (K, codebook_size)``, so the payload is only decodable with the same table: the sha256
names it. Positions are pushed last-to-first, so decoding pops position 0 of every tile first.
A chunk whose tokens the table predicts worse than a flat code (data unlike the prior's training
data) is coded flat instead (mode 1), which bounds it at ``log2(codebook_size)`` bits per token.
"""

from __future__ import annotations

import struct
import threading
from typing import Any, NamedTuple

import constriction
import numpy as np

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "MODE_FLAT",
    "MODE_MODEL",
    "PayloadHeader",
    "decode",
    "encode",
    "header_size",
    "ideal_bits",
    "read_header",
]

MAGIC = b"D2AT"
FORMAT_VERSION = 2  # the newest written; 1 and 2 are read
MODE_MODEL, MODE_FLAT = 0, 1
_FIXED = struct.Struct("<4sBBH4s32s")  # magic, version, ndim, reserved, dtype, sha256
_U32 = struct.Struct("<I")

_tables: dict[str, list[constriction.stream.model.Categorical]] = {}
_tables_lock = threading.Lock()


class PayloadHeader(NamedTuple):
    """Decoded header of a token payload."""

    version: int
    mode: int
    dtype: np.dtype
    sha256: str
    shape: tuple[int, ...]
    extent: tuple[int, ...]  # tiles coded along each tile axis (the shape's but for version 2)
    n_words: int
    offset: int  # byte offset of the first ANS word


def header_size(ndim: int, *, trimmed: bool = False) -> int:
    """Bytes of a payload header for a chunk of ``ndim`` dims (``trimmed``: a version 2 header,
    written when trailing all-zero tiles, e.g. Zarr's padding of an edge chunk, are left out)."""
    return _FIXED.size + 4 * ndim + 4 * (ndim - 1) * bool(trimmed) + _U32.size


def _coded_extent(tokens: np.ndarray) -> tuple[int, ...]:
    """Along each tile axis of ``tokens (..., k)``, 1 + the last index holding a tile with a
    non-zero token (0 where every tile is all zeros)."""
    live = np.any(tokens != 0, axis=-1)
    extent = []
    for axis in range(live.ndim):
        along = np.any(live, axis=tuple(a for a in range(live.ndim) if a != axis))
        hit = np.flatnonzero(along)
        extent.append(int(hit[-1]) + 1 if hit.size else 0)
    return tuple(extent)


def _categoricals(sha256: str, table: np.ndarray) -> list[constriction.stream.model.Categorical]:
    """One ``constriction`` categorical model per token position, cached per process by sha256."""
    with _tables_lock:
        models = _tables.get(sha256)
        if models is None or len(models) != table.shape[0]:
            probs = np.asarray(table, dtype=np.float64)
            models = [constriction.stream.model.Categorical(row, perfect=False) for row in probs]
            _tables[sha256] = models
        return models


def _flat(codebook_size: int, k: int) -> list[Any]:
    """The flat code: one uniform model over the codebook for every position."""
    return [constriction.stream.model.Uniform(codebook_size)] * k


def _ans_encode(flat: np.ndarray, models: list[Any]) -> np.ndarray:
    """ANS words of tokens ``(N, k)``; position ``j`` is coded with ``models[j]``, last first."""
    coder = constriction.stream.stack.AnsCoder()
    for j in reversed(range(flat.shape[1])):
        coder.encode_reverse(np.ascontiguousarray(flat[:, j], dtype=np.int32), models[j])
    return np.asarray(coder.get_compressed(), dtype="<u4")


def _check_table(table: np.ndarray) -> np.ndarray:
    table = np.asarray(table)
    if table.ndim != 2 or not np.issubdtype(table.dtype, np.integer) or table.size == 0:
        raise ValueError(
            "The token model must be a 2-D integer frequency table (positions, codebook_size). "
            f"Got an array of shape {table.shape} and dtype {table.dtype} instead."
        )
    if np.any(table <= 0):
        raise ValueError(
            "Every frequency of the token model must be >= 1. Got a zero or negative one."
        )
    return table


def encode(tokens: np.ndarray, table: np.ndarray, sha256: str) -> bytes:
    """Entropy-code a chunk of tokens into a self-describing payload.

    Parameters
    ----------
    tokens : numpy.ndarray
        Integer tokens, shape ``(..., k)`` with the token position last (``k <= K``).
    table : numpy.ndarray
        Token model ``(K, codebook_size)``, integer frequencies >= 1.
    sha256 : str
        Hex sha256 of the prior the table belongs to (64 characters).

    Returns
    -------
    bytes
        The payload (see module docstring).
    """
    tokens = np.asarray(tokens)
    table = _check_table(table)
    if not np.issubdtype(tokens.dtype, np.integer) or tokens.ndim < 1:
        raise TypeError(
            "Token payloads hold integer arrays with the token axis last. "
            f"Got dtype {tokens.dtype} with {tokens.ndim} dims instead."
        )
    k = tokens.shape[-1]
    if k > table.shape[0]:
        raise ValueError(
            f"The chunk has {k} tokens per tile but the token model knows {table.shape[0]} "
            f"positions. Got shape {tokens.shape} instead. Keep the whole token axis in one chunk."
        )
    if tokens.size and (tokens.min() < 0 or tokens.max() >= table.shape[1]):
        raise ValueError(
            f"Tokens must lie in [0, {table.shape[1]}) for this model. Got values in "
            f"[{tokens.min()}, {tokens.max()}] instead: were they made by model {sha256[:12]}...?"
        )
    extent = _coded_extent(tokens) if tokens.ndim > 1 and k else tokens.shape[:-1]
    trimmed = extent != tokens.shape[:-1]
    block = tokens[tuple(slice(0, e) for e in extent)] if trimmed else tokens
    flat = block.reshape(int(np.prod(block.shape[:-1])), k)
    mode, words = MODE_MODEL, _ans_encode(flat, _categoricals(sha256, table))
    if 32 * words.size > flat.size * np.log2(table.shape[1]) + 64:  # the table fits badly
        flat_words = _ans_encode(flat, _flat(table.shape[1], k))
        if flat_words.size < words.size:
            mode, words = MODE_FLAT, flat_words
    head = _FIXED.pack(
        MAGIC,
        2 if trimmed else 1,
        tokens.ndim,
        mode,
        tokens.dtype.str.encode().ljust(4, b"\0"),
        bytes.fromhex(sha256),
    )
    shape = struct.pack(f"<{tokens.ndim}I", *tokens.shape)
    if trimmed:
        shape += struct.pack(f"<{len(extent)}I", *extent)
    return b"".join((head, shape, _U32.pack(words.size), words.tobytes()))


def read_header(payload: bytes | memoryview) -> PayloadHeader:
    """Parse and check the header of a payload (cheap: reads no ANS word)."""
    buf = memoryview(payload).cast("B")
    if len(buf) < _FIXED.size or bytes(buf[:4]) != MAGIC:
        raise ValueError(
            f"Not an xr_d2ar token payload: expected magic {MAGIC!r}. Got {bytes(buf[:4])!r} "
            "instead. Is the array coded with another codec?"
        )
    _magic, version, ndim, mode, dtype_s, sha = _FIXED.unpack_from(buf, 0)
    if version not in (1, 2) or mode not in (MODE_MODEL, MODE_FLAT):
        raise ValueError(
            f"Token payload format version {version} mode {mode} is not supported (this xr_d2ar "
            f"reads versions 1 and 2, modes 0 and 1). Upgrade xr_d2ar."
        )
    pos = _FIXED.size
    shape = struct.unpack_from(f"<{ndim}I", buf, pos)
    pos += 4 * ndim
    extent = tuple(shape[:-1])
    if version == 2:
        extent = struct.unpack_from(f"<{ndim - 1}I", buf, pos)
        pos += 4 * (ndim - 1)
        if any(e > s for e, s in zip(extent, shape)):
            raise ValueError(f"Corrupt token payload: coded extent {extent} exceeds shape {shape}.")
    (n_words,) = _U32.unpack_from(buf, pos)
    pos += 4
    if len(buf) != pos + 4 * n_words:
        raise ValueError(
            f"Truncated or padded token payload: header says {n_words} words ({pos + 4 * n_words} "
            f"bytes). Got {len(buf)} bytes instead."
        )
    dtype = np.dtype(dtype_s.rstrip(b"\0").decode())
    return PayloadHeader(version, mode, dtype, sha.hex(), tuple(shape), tuple(extent), n_words, pos)


def decode(payload: bytes | memoryview, table: np.ndarray) -> np.ndarray:
    """Decode a payload made by :func:`encode` with the same token model.

    Returns
    -------
    numpy.ndarray
        Tokens with the shape and dtype recorded in the payload.
    """
    header = read_header(payload)
    table = _check_table(table)
    k = header.shape[-1] if header.shape else 0
    n = int(np.prod(header.extent)) if header.shape else 0
    words = np.frombuffer(payload, dtype="<u4", count=header.n_words, offset=header.offset)
    out = np.empty((n, k), dtype=np.int32)
    if n and k:
        coder = constriction.stream.stack.AnsCoder(words.astype(np.uint32))
        if header.mode == MODE_MODEL:
            models = _categoricals(header.sha256, table)
        else:
            models = _flat(table.shape[1], k)
        for j in range(k):
            out[:, j] = coder.decode(models[j], n)
    if header.extent == tuple(header.shape[:-1]):
        return out.reshape(header.shape).astype(header.dtype, copy=False)
    full = np.zeros(header.shape, dtype=header.dtype)  # the tiles left out were all token 0
    full[tuple(slice(0, e) for e in header.extent)] = out.reshape(*header.extent, k)
    return full


def ideal_bits(tokens: np.ndarray, table: np.ndarray) -> float:
    """Ideal code length (bits) of ``tokens (..., k)`` under the token model, ``-sum log2 p``."""
    table = _check_table(table).astype(np.float64)
    logp = np.log2(table) - np.log2(table.sum(axis=1, keepdims=True))  # (K, C)
    tokens = np.asarray(tokens)
    k = tokens.shape[-1]
    flat = tokens.reshape(int(np.prod(tokens.shape[:-1])), k)
    return float(-logp[np.arange(k)[None, :], flat].sum())
