"""Token payloads: exact round trips, rate at the ideal code length, errors, golden bitstreams."""

from __future__ import annotations

import json

import numpy as np
import pytest
from common import FIXTURE, check_backwards_compatibility, prior, real_tokens

from xr_d2ar.codecs import payload

CUBE, N_TIMES = "sentinel2_l3a_bouconne", 2  # 2 dates x 4 x 4 tiles


@pytest.fixture(scope="module")
def tokens():
    return real_tokens(CUBE, N_TIMES)


@pytest.fixture(scope="module")
def table():
    return np.asarray(prior().token_model)


@pytest.mark.parametrize("k", [256, 40, 1, 0])
def test_round_trip_is_exact_for_any_prefix(tokens, table, k):
    part = np.ascontiguousarray(tokens[..., :k])
    data = payload.encode(part, table, prior().sha256)
    header = payload.read_header(data)
    assert header.shape == part.shape and header.dtype == part.dtype
    assert header.sha256 == prior().sha256
    np.testing.assert_array_equal(payload.decode(data, table), part)


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.int64])
def test_round_trip_keeps_dtype_and_shape(tokens, table, dtype):
    part = tokens[:1, 1:3, :, :16].astype(dtype)
    out = payload.decode(payload.encode(part, table, prior().sha256), table)
    assert out.dtype == np.dtype(dtype) and out.shape == part.shape
    np.testing.assert_array_equal(out, part)


def test_rate_matches_the_ideal_code_length(tokens, table):
    """ANS spends what -log2 p of the token model says, within 32 bits of state and 0.5 %."""
    data = payload.encode(tokens, table, prior().sha256)
    coded = 8 * (len(data) - payload.header_size(tokens.ndim))
    ideal = payload.ideal_bits(tokens, table)
    flat = tokens.size * np.log2(table.shape[1])
    assert min(ideal, flat) - 64 <= coded <= min(1.005 * ideal, flat) + 64, (coded, ideal, flat)
    mode = payload.read_header(data).mode
    assert mode == (payload.MODE_MODEL if ideal < flat else payload.MODE_FLAT)


def test_tokens_the_table_predicts_badly_are_coded_flat(table):
    """The least likely token at every position: the table would spend far more than a flat code."""
    worst = np.tile(table[:, 1:].argmin(axis=1).astype(np.int32) + 1, (50, 1))  # (50 tiles, K)
    data = payload.encode(worst, table, prior().sha256)
    assert payload.read_header(data).mode == payload.MODE_FLAT
    np.testing.assert_array_equal(payload.decode(data, table), worst)
    coded = 8 * (len(data) - payload.header_size(2))
    assert coded <= worst.size * np.log2(table.shape[1]) + 64 < payload.ideal_bits(worst, table)


def test_payload_is_self_describing(tokens, table):
    data = payload.encode(tokens, table, prior().sha256)
    assert data[:4] == payload.MAGIC and data[4] == 1  # no trailing all-zero tile: version 1
    assert payload.read_header(data).offset == payload.header_size(tokens.ndim)


def test_zarr_edge_padding_costs_nothing(tokens, table):
    """An edge chunk as Zarr writes it (padded to the chunk shape with token 0) codes to the bytes
    of its real tiles plus the extents: the padding is left out, and comes back as 0."""
    sha = prior().sha256
    padded = np.zeros((tokens.shape[0] + 1, tokens.shape[1] + 3, tokens.shape[2] + 2, tokens.shape[3]),
                      tokens.dtype)
    padded[: tokens.shape[0], : tokens.shape[1], : tokens.shape[2]] = tokens
    data = payload.encode(padded, table, sha)
    real = payload.encode(tokens, table, sha)
    assert data[4] == payload.FORMAT_VERSION == 2
    assert payload.read_header(data).extent == tokens.shape[:-1]
    assert len(data) == len(real) + 4 * (tokens.ndim - 1)
    assert payload.read_header(data).offset == payload.header_size(tokens.ndim, trimmed=True)
    np.testing.assert_array_equal(payload.decode(data, table), padded)
    inner = padded.copy()
    inner[0, 0, 0] = 0  # an all-zero tile inside the coded block is coded like any other
    np.testing.assert_array_equal(payload.decode(payload.encode(inner, table, sha), table), inner)
    empty = np.zeros_like(padded)  # all padding
    assert payload.read_header(payload.encode(empty, table, sha)).extent == (0, 0, 0)
    np.testing.assert_array_equal(payload.decode(payload.encode(empty, table, sha), table), empty)
    with pytest.raises(ValueError, match="exceeds shape"):
        bad = bytearray(data)
        bad[payload.header_size(4) - 4: payload.header_size(4)] = (99).to_bytes(4, "little")
        payload.read_header(bytes(bad))


def test_bad_payloads_raise_clear_errors(tokens, table):
    data = payload.encode(tokens[..., :8], table, prior().sha256)
    with pytest.raises(ValueError, match="magic"):
        payload.read_header(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="Truncated"):
        payload.read_header(data[:-4])
    with pytest.raises(ValueError, match="version 9 mode"):
        payload.read_header(data[:4] + bytes([9]) + data[5:])
    with pytest.raises(ValueError, match="mode 7"):
        payload.read_header(data[:6] + bytes([7]) + data[7:])


def test_bad_tokens_raise_clear_errors(tokens, table):
    sha = prior().sha256
    with pytest.raises(ValueError, match=r"must lie in \[0, 1000\)"):
        payload.encode(tokens[..., :4] + table.shape[1], table, sha)
    with pytest.raises(ValueError, match="Keep the whole token axis"):
        payload.encode(np.zeros((2, table.shape[0] + 1), np.int32), table, sha)
    with pytest.raises(TypeError, match="integer"):
        payload.encode(tokens.astype(np.float32), table, sha)
    with pytest.raises(ValueError, match=">= 1"):
        payload.encode(tokens[..., :4], np.zeros_like(table), sha)


def test_golden_bitstreams_still_decode_and_encode_identically():
    folder = FIXTURE / "xr_d2ar.tokens"
    meta = json.loads((folder / "manifest.json").read_text())
    table = np.load(folder / meta["table"])
    n = check_backwards_compatibility(
        "xr_d2ar.tokens",
        decode=lambda data: payload.decode(data, table),
        encode=lambda array: payload.encode(array, table, meta["sha256"]),
    )
    assert n >= 3
