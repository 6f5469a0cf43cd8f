"""The ``xr_d2ar.tokens`` codec for numcodecs (Zarr v2) and native Zarr v3, on real tokens."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from common import check_config, check_encode_decode, check_repr, prior, real_tokens
from zarr.registry import get_codec_class

from xr_d2ar.codecs import CODEC_ID, TokenCodec, TokenCodecV3, payload
from xr_d2ar.errors import ChunkAlignmentError, ModelMismatchError

CUBE, N_TIMES = "sentinel2_l3a_bouconne", 2
UNKNOWN_SHA = "0" * 64


@pytest.fixture(scope="module")
def tokens():
    return np.ascontiguousarray(real_tokens(CUBE, N_TIMES)[..., :64])


@pytest.fixture(scope="module")
def codec():
    return TokenCodec(prior().sha256, model_name=prior().name)


def test_numcodecs_round_trip_config_and_repr(tokens, codec):
    enc = check_encode_decode(tokens, codec)
    assert payload.read_header(enc).shape == tokens.shape
    check_encode_decode(tokens[0, :2, :3], codec)
    check_config(codec)
    check_repr(repr(codec), {"TokenCodec": TokenCodec})


def test_numcodecs_config_is_validated():
    with pytest.raises(ValueError, match="64 lower-case hex"):
        TokenCodec("abc")
    with pytest.raises(TypeError, match="must be a str"):
        TokenCodec(123)
    with pytest.raises(TypeError, match="str or None"):
        TokenCodec(UNKNOWN_SHA, model_name=5)


def test_numcodecs_rejects_untyped_buffers(tokens, codec):
    with pytest.raises(TypeError, match="integer numpy array"):
        codec.encode(tokens.tobytes())


def test_payload_of_another_prior_is_refused(tokens, codec):
    data = payload.encode(tokens, np.asarray(prior().token_model), UNKNOWN_SHA)
    with pytest.raises(ModelMismatchError, match="another store"):
        codec.decode(data)


def test_missing_prior_names_the_model_and_the_fix(tokens):
    codec = TokenCodec(UNKNOWN_SHA, model_name="my-prior")
    with pytest.raises(ModelMismatchError, match="'my-prior'.*XR_D2AR_MODEL_PATH"):
        codec.encode(tokens)


def test_zarr3_codec_serialises_and_is_registered(codec):
    v3 = TokenCodecV3(model_sha256=codec.model_sha256, model_name=codec.model_name)
    data = v3.to_dict()
    assert data == {
        "name": CODEC_ID,
        "configuration": {"model_sha256": codec.model_sha256, "model_name": codec.model_name},
    }
    assert TokenCodecV3.from_dict(data) == v3
    assert get_codec_class(CODEC_ID) is TokenCodecV3
    with pytest.raises(ValueError, match="Got 'nope' instead"):
        TokenCodecV3(model_sha256="nope")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_real_zarr_array_round_trip(tmp_path, tokens, codec, zarr_format):
    kwargs = (
        {"serializer": TokenCodecV3(model_sha256=codec.model_sha256), "compressors": None}
        if zarr_format == 3
        else {"compressors": codec, "filters": None}
    )
    arr = zarr.create_array(
        tmp_path / "t.zarr",
        shape=tokens.shape,
        dtype="int32",
        chunks=(1, 3, 3, tokens.shape[-1]),
        zarr_format=zarr_format,
        **kwargs,
    )
    arr[...] = tokens
    again = zarr.open_array(tmp_path / "t.zarr", mode="r")
    np.testing.assert_array_equal(again[...], tokens)
    np.testing.assert_array_equal(again[1, 2:4, 1], tokens[1, 2:4, 1])
    chunk = next(
        p for p in (tmp_path / "t.zarr").rglob("*") if p.is_file() and p.name[0] not in ".z"
    )
    header = payload.read_header(chunk.read_bytes())  # a chunk file describes itself
    assert header.sha256 == codec.model_sha256 and header.shape[-1] == tokens.shape[-1]


def test_zarr3_validate_rejects_split_token_axis_and_floats(tmp_path, codec):
    v3 = TokenCodecV3(model_sha256=codec.model_sha256)
    with pytest.raises(ChunkAlignmentError, match="whole token axis"):
        zarr.create_array(
            tmp_path / "a.zarr",
            shape=(4, 64),
            dtype="int32",
            chunks=(4, 32),
            serializer=v3,
            compressors=None,
        )
    with pytest.raises(TypeError, match="integer tokens"):
        zarr.create_array(
            tmp_path / "b.zarr",
            shape=(4, 64),
            dtype="float32",
            chunks=(4, 64),
            serializer=v3,
            compressors=None,
        )
