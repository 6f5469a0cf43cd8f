"""``d2ar info``: the printed prior, ratios, sizes, bits per token, dates, extent are measured."""

from __future__ import annotations

import json

import numpy as np
import pytest
from common import cube, prior, token_store

from xr_d2ar import store
from xr_d2ar.cli import main
from xr_d2ar.cli.info import token_bits

FLANDERS = "worldcereal_flanders_a_s2"


@pytest.fixture(scope="module")
def path():
    return token_store(FLANDERS, 8, 3, 1000.0)


def test_info_json_matches_the_store(path, capsys):
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    sizes = store.store_sizes(path)
    src = cube(FLANDERS, 8)
    assert info["sizes"]["store_bytes"] == sizes.store_bytes
    assert info["sizes"]["token_ratio"] == pytest.approx(sizes.source_bytes / sizes.token_bytes)
    assert info["sizes"]["store_ratio"] == pytest.approx(
        src["reflectance"].nbytes / sizes.store_bytes
    )
    assert info["model"] == {
        "name": prior().name,
        "sha256": prior().sha256,
        "bytes": prior().nbytes,
    }
    assert info["dates"]["count"] == 8 and info["dates"]["first"] == str(src.time.values[0])[:19]
    ext = info["extent"]
    assert ext["lat_min"] < src.attrs["geospatial_lat_center"] < ext["lat_max"]
    assert ext["lon_min"] < src.attrs["geospatial_lon_center"] < ext["lon_max"]
    north_south_m = (ext["lat_max"] - ext["lat_min"]) * 111.2e3
    assert 600 < north_south_m < 700  # 64 px of 10 m (plus the CRS's tilt)
    bits = info["bits_per_token"]
    assert bits["model"] <= bits["coded"] <= 1.01 * bits["model"] + 0.05
    assert bits["empirical"] <= np.log2(bits["n_tokens"])


def test_info_text(path, capsys):
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    sizes = store.store_sizes(path)
    assert f"{sizes.token_ratio:,.1f}x tokens only" in text
    assert f"{sizes.store_ratio:,.1f}x whole store ({sizes.store_bytes:,} B)" in text
    assert "ideal under the token model" in text and "empirical entropy" in text
    assert f"{prior().nbytes / 1e6:.1f} MB, not in the store" in text


def test_missing_store_is_a_clear_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nothing.zarr")]) == 1
    assert "No Zarr store at" in capsys.readouterr().err


def test_token_bits_counts_what_it_is_given():
    tokens = np.array([[0, 1], [0, 2], [0, 1], [0, 2]])
    table = np.ones((2, 4), np.uint32)
    bits = token_bits(tokens, table, payload_bytes=1, header_bytes=0)
    assert bits["model"] == pytest.approx(2.0)  # uniform over 4 values
    assert bits["empirical"] == pytest.approx(0.5)  # position 0: 0 bits, position 1: 1 bit
    assert bits["coded_with_headers"] == pytest.approx(1.0)
