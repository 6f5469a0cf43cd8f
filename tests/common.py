"""numcodecs-style shared checks for the xr_d2ar codecs, plus golden-file helpers.

``check_encode_decode`` round-trips every buffer type numcodecs accepts (and ``out=``),
``check_config`` goes through JSON and the registry, ``check_repr`` evaluates the repr, and
``check_backwards_compatibility`` compares against files under ``tests/fixture/<codec_id>/``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numcodecs.registry import get_codec

if TYPE_CHECKING:
    import xarray as xr

FIXTURE = Path(__file__).resolve().parent / "fixture"


def check_encode_decode(arr: np.ndarray, codec: Any) -> bytes:
    """Encode ``arr``; decode it from bytes, bytearray, memoryview and ndarray, and into ``out``.

    Returns the encoded bytes.
    """
    enc = bytes(codec.encode(arr))
    for buf in (enc, bytearray(enc), memoryview(enc), np.frombuffer(enc, np.uint8)):
        dec = codec.decode(buf)
        assert dec.dtype == arr.dtype and dec.shape == arr.shape
        np.testing.assert_array_equal(dec, arr)
    out = np.empty_like(arr)
    assert codec.decode(enc, out=out) is out
    np.testing.assert_array_equal(out, arr)
    return enc


def check_config(codec: Any) -> None:
    """The config is JSON-only, carries the id, and rebuilds an equal codec through the registry."""
    config = codec.get_config()
    assert config["id"] == codec.codec_id
    again = get_codec(json.loads(json.dumps(config)))
    assert again == codec and type(again) is type(codec)


def check_repr(stmt: str, namespace: dict[str, Any]) -> None:
    """``repr(eval(stmt)) == stmt``."""
    assert repr(eval(stmt, namespace)) == stmt


def md5(data: bytes) -> str:
    """Hex md5 of bytes (bitstream fingerprints in fixture files)."""
    return hashlib.md5(data).hexdigest()


def check_backwards_compatibility(
    codec_id: str,
    decode: Callable[[bytes], np.ndarray],
    encode: Callable[[np.ndarray], bytes],
) -> int:
    """Every ``fixture/<codec_id>/*.bin`` decodes to its ``.npy`` and re-encodes to the same bytes.

    ``manifest.json`` in the folder lists the cases with the md5 of each payload. Returns the number
    of cases checked (zero would mean the fixtures are missing: callers assert it is positive).
    """
    folder = FIXTURE / codec_id
    manifest = json.loads((folder / "manifest.json").read_text())
    for case in manifest["cases"]:
        payload = (folder / case["payload"]).read_bytes()
        assert md5(payload) == case["md5"], f"fixture {case['payload']} changed on disk"
        expected = np.load(folder / case["array"])
        decoded = decode(payload)
        assert decoded.dtype == expected.dtype
        np.testing.assert_array_equal(decoded, expected)
        assert md5(encode(expected)) == case["md5"], (
            f"encoding {case['array']} no longer gives the golden bitstream {case['payload']}: "
            "the payload format or the entropy coder changed. Bump payload.FORMAT_VERSION."
        )
    return len(manifest["cases"])


# ------------------------------------------------------------------ real stores, built once


_TMP: list[Path] = []


def scratch() -> Path:
    """A temporary folder for this test session (removed at exit)."""
    import atexit
    import shutil
    import tempfile

    if not _TMP:
        _TMP.append(Path(tempfile.mkdtemp(prefix="xr_d2ar_tests_")))
        atexit.register(shutil.rmtree, _TMP[0], True)
    return _TMP[0]


@functools.cache
def cube(name: str, n_times: int | None = None) -> xr.Dataset:
    """A real sample cube (its last ``n_times`` dates), loaded; skips when the data is absent."""
    import pytest

    from xr_d2ar import datasets
    from xr_d2ar.errors import DataNotFoundError

    try:
        lazy = datasets.open(name)
    except DataNotFoundError as exc:
        pytest.skip(f"sample cubes not found ({exc}); set XR_D2AR_DATA (docs/data.md)")
    with lazy:  # close the file once loaded
        ds = lazy if n_times is None else lazy.isel(time=slice(-n_times, None))
        return ds.load()


@functools.cache
def prior() -> Any:
    """The shipped default prior on CPU."""
    from xr_d2ar.model import load_model

    return load_model()


@functools.cache
def token_store(
    name: str,
    n_times: int,
    zarr_format: int,
    ratio: float = 1000.0,
    chunks: tuple[tuple[str, int], ...] | None = None,
) -> Path:
    """Compress a real cube with the shipped prior into a Zarr store (built once per session)."""
    import xr_d2ar.accessor  # noqa: F401

    path = scratch() / f"{name}-{n_times}-v{zarr_format}-{ratio:g}-{hash(chunks)}.d2ar.zarr"
    tokens = cube(name, n_times).d2ar.compress(ratio=ratio, chunks=dict(chunks) if chunks else None)
    tokens.d2ar.to_zarr(path, zarr_format=zarr_format, progress=False)
    return path


@functools.cache
def real_tokens(name: str, n_times: int) -> np.ndarray:
    """All K tokens per tile of a real cube, ``(time, tile_y, tile_x, K)`` int32 (shipped prior)."""
    import xr_d2ar.accessor  # noqa: F401

    tokens = cube(name, n_times).d2ar.compress(tokens=prior().n_tokens)
    return tokens["tokens"].values
