"""The shipped default prior: loads, is what its files say, and still reaches its recorded quality."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import needs_data

from xr_d2ar.model import DEFAULT_PRIOR, D2arModel, load_model
from xr_d2ar.model.checkpoint import sha256_file


@pytest.fixture(scope="module")
def prior():
    return load_model(device="cpu")


def test_shipped_prior_loads_and_describes_itself(prior):
    config = json.loads(DEFAULT_PRIOR.with_suffix(".json").read_text())
    assert prior is load_model(None, device="cpu")
    assert prior.sha256 == sha256_file(DEFAULT_PRIOR) == config["sha256"]
    assert prior.nbytes == DEFAULT_PRIOR.stat().st_size < 16e6
    assert prior.token_model.shape == (prior.n_tokens, prior.codebook_size) and prior.token_model.min() >= 1
    assert config["training"]["device"].startswith("NVIDIA") and config["region"]
    sensors = {b["sensor"] for b in config["bands"]}
    assert {"Sentinel-2A", "Landsat-8 OLI", "CBERS-4 AWFI", "Landsat-5 TM"} <= sensors
    prior.check_bands(np.array([492.0, 665.0, 833.0, 1610.0, 10895.0]))  # S2 and Landsat thermal


def test_ratio_to_tokens_is_monotone(prior):
    ks = [prior.tokens_for_ratio(r, n_bands=10, itemsize=2) for r in (10, 100, 1000, 10000, 1e6)]
    assert ks == sorted(ks, reverse=True) and ks[0] == prior.n_tokens and ks[-1] == 0
    budget = 10 * 64 * 64 * 2 / 1000  # bytes: the 1000x budget of one S2 tile
    cum = np.cumsum(prior.token_bits) / 8
    assert cum[ks[2] - 1] <= budget < cum[ks[2]]  # the largest prefix that fits, not just one


@needs_data
def test_shipped_prior_reconstructs_a_held_out_tile_as_recorded(prior):
    """One real held-out tile, decoded as when the prior was recorded (8 Euler steps, seed 0)."""
    from xr_d2ar.train.evaluate import check_tile

    want = prior.config["metrics"]["check"]
    got = check_tile(prior, tokens=want["tokens"], cube=want["cube"], seed=want["seed"], steps=want["steps"])
    assert got["date"] == want["date"]
    assert got["psnr"] == pytest.approx(want["psnr"], abs=0.25)
    if "psnr_clear" in want:
        assert got["psnr_clear"] == pytest.approx(want["psnr_clear"], abs=0.25)


@needs_data
def test_token_bits_are_what_new_dates_cost(prior, tmp_path):
    """The rate ``compress(ratio=)`` plans with is measured on held-out dates: above the token model's
    figure on rows of its training tiles, and recording it rewrites the JSON only."""
    import shutil

    from xr_d2ar.train.evaluate import heldout_token_bits, record_token_bits

    record = prior.config["metrics"]["token_bits"]
    assert np.sum(prior.token_bits) == pytest.approx(record["held_out_total"])
    assert record["held_out_total"] > 1.1 * record["training_rows_total"]
    names = ["worldcereal_flanders_b_s2"]
    for suffix in (".safetensors", ".json"):
        shutil.copy(DEFAULT_PRIOR.with_suffix(suffix), tmp_path / f"p{suffix}")
    copy = D2arModel.from_file(tmp_path / "p.safetensors", device=torch.device("cpu"))  # not the cached prior
    held = record_token_bits(copy, tmp_path / "p.json", names)
    assert held["cubes"] == names and held["n_tiles"] > 0
    np.testing.assert_array_equal(copy.token_bits, held["bits"])
    again = D2arModel.from_file(tmp_path / "p.safetensors", device=torch.device("cpu"))
    assert again.sha256 == prior.sha256
    np.testing.assert_array_equal(again.token_bits, held["bits"])
    assert not np.array_equal(prior.token_bits, held["bits"])  # the shipped prior is untouched
    assert again.config["metrics"]["token_bits"]["training_rows_total"] == record["training_rows_total"]
    assert held == heldout_token_bits(again, names)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"sha256": "0" * 64, "token_bits": [1.0], "metrics": {}}))
    with pytest.raises(ValueError, match="belongs to weights 000000000000"):
        record_token_bits(copy, other, names)


@needs_data
def test_compress_meets_the_asked_ratio_on_new_dates(tmp_path):
    """Held-out dates of a training place, compressed for 1000x without ``exact_ratio``: the tokens
    land near 1000x on disk (743x when the rate came from training rows)."""
    from xr_d2ar import datasets

    _, held = datasets.split_time(datasets.open("worldcereal_flanders_a_s2"), holdout=0.2)
    sizes = held.d2ar.compress(ratio=1000).d2ar.to_zarr(tmp_path / "s.zarr", progress=False)
    assert 950 <= sizes.token_ratio <= 1200
