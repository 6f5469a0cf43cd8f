"""The prior's networks, sampler, token model and checkpoint files (tiny preset, CPU, real tiles)."""

from __future__ import annotations

import json
import shutil

import constriction
import numpy as np
import pytest
import torch
from conftest import needs_data

from xr_d2ar.errors import (
    CubeValidationError,
    DataNotFoundError,
    ModelMismatchError,
    UnknownBandError,
)
from xr_d2ar.model import PRESETS, ModelConfig, load_model
from xr_d2ar.model.checkpoint import read_prior, save_prior
from xr_d2ar.model.flow import integrate, tile_noise
from xr_d2ar.model.layers import patchify, unpatchify
from xr_d2ar.model.net import D2arNet
from xr_d2ar.model.token_model import cross_entropy_bits, fit_token_model, tokens_for_ratio
from xr_d2ar.model.tokenizer import FSQ

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory, flanders, cbers):
    """A tiny prior trained for a few steps on two real cubes (training itself is in test_train)."""
    from xr_d2ar.train import train

    out = tmp_path_factory.mktemp("tiny_prior")
    cubes = {"flanders": flanders.isel(time=slice(0, 12)), "cbers": cbers}
    model = train(cubes, out=out, preset="tiny", vae_steps=10, flow_steps=10, batch_size=8, capacity=400,
                  device="cpu", progress=False, ckpt_every=0)
    return model, out


def _flanders_tiles(ds, n=4, tile=32):
    from xr_d2ar import datasets, geo

    phys = datasets.to_reflectance(ds["reflectance"].isel(time=slice(0, n))).values[:, :, :tile, :tile]
    lon, lat = geo.lonlat(ds, ds.y.values[tile // 2], ds.x.values[tile // 2])
    meta = {
        "wavelength": ds.wavelength.values, "bandwidth": ds.bandwidth.values,
        "lat": np.full(n, float(lat)), "lon": np.full(n, float(lon)),
        "time": ds.time.values[:n], "sensor": ds.sensor.values[:n].astype(str),
    }
    return phys.astype(np.float32), meta


def test_config_round_trip_and_validation():
    cfg = PRESETS["default"]
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="multiple of"):
        ModelConfig(tile_size=60)
    with pytest.raises(ValueError, match="Unknown model config keys"):
        ModelConfig.from_dict({"tile_size": 64, "bogus": 1})
    with pytest.raises(ValueError, match="stat_tokens must be in"):
        ModelConfig(stat_tokens=256)
    assert ModelConfig.from_dict({"n_tokens": 16}).stat_tokens == 0  # priors made before the field
    two = ModelConfig(stat_tokens=10, stat_grid=[2, 4])
    assert two.stat_grids == (2, 4) and two.n_stat_total == 10 * (1 + 4 + 16)
    assert ModelConfig.from_dict(json.loads(json.dumps(two.to_dict()))) == two
    for bad in ([4, 2], [2, 3], [2, 2], [1], 3 * [2]):
        with pytest.raises(ValueError, match="stat_grid must be"):
            ModelConfig(stat_tokens=4, stat_grid=bad)
    with pytest.raises(ValueError, match="leave learned tokens"):
        ModelConfig(stat_tokens=10, stat_grid=[2, 4, 8])  # 850 statistics tokens >= K = 256


def test_fsq_tokens_and_codes_agree():
    fsq = FSQ([8, 5, 5, 5])
    codes, tokens = fsq.quantise(torch.randn(100, 7, 4) * 3)
    assert tokens.min() >= 0 and tokens.max() < 1000
    torch.testing.assert_close(fsq.codes(tokens), codes.detach(), rtol=0, atol=1e-6)
    assert len(torch.unique(fsq.quantise(torch.randn(20000, 4) * 3)[1])) > 900  # codebook is used


def test_patchify_is_invertible():
    z = torch.randn(3, 4, 8, 8)
    assert torch.equal(unpatchify(patchify(z, 2), 2, 4, 8, 8), z)


@needs_data
def test_band_set_agnostic_stem_and_head(flanders):
    """Permuting the bands (with their wavelengths) permutes the output and leaves the latent alone."""
    torch.manual_seed(0)
    net = D2arNet(TINY).eval()
    x, meta = _flanders_tiles(flanders)
    xs = torch.from_numpy(np.nan_to_num((x - 0.1) / 0.1))
    wl = torch.tensor(meta["wavelength"]).float().expand(len(x), -1)
    bw = torch.tensor(meta["bandwidth"]).float().expand(len(x), -1)
    perm = torch.randperm(x.shape[1])
    with torch.no_grad():
        emb, emb_p = net.vae.embed_bands(wl, bw), net.vae.embed_bands(wl[:, perm], bw[:, perm])
        mask = torch.ones_like(xs)
        z, _ = net.vae.encode(xs, mask, emb)
        z_p, _ = net.vae.encode(xs[:, perm], mask, emb_p)
        torch.testing.assert_close(z_p, z, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(net.vae.decode(z, emb_p), net.vae.decode(z, emb)[:, perm], rtol=1e-4, atol=1e-5)
        # a 3-band subset is a valid input too
        assert net.vae.encode(xs[:, :3], mask[:, :3], emb[:, :3])[0].shape == z.shape


def test_tile_noise_depends_only_on_seed_and_index():
    a = tile_noise((2, 4, 4), seed=5, tile_index=np.array([3, 7, 11]))
    b = tile_noise((2, 4, 4), seed=5, tile_index=np.array([7]))
    assert torch.equal(a[1], b[0])
    assert not torch.equal(a[0], tile_noise((2, 4, 4), seed=6, tile_index=np.array([3]))[0])
    with pytest.raises(ValueError, match=">= 0"):
        tile_noise((1,), seed=-1, tile_index=np.array([0]))


def test_solvers_integrate_exactly_where_they_should():
    z0 = torch.randn(2, 3)
    const = integrate(lambda z, t: torch.ones_like(z), z0, steps=3, solver="euler")
    torch.testing.assert_close(const, z0 + 1)
    linear = integrate(lambda z, t: t[:, None].expand_as(z), z0, steps=4, solver="heun")  # dz/dt = t
    euler = integrate(lambda z, t: t[:, None].expand_as(z), z0, steps=4, solver="euler")
    assert (linear - (z0 + 0.5)).abs().max() < (euler - (z0 + 0.5)).abs().max()
    with pytest.raises(ValueError, match="solver"):
        integrate(lambda z, t: z, z0, solver="rk45")


def test_token_model_rates_are_honest():
    """Tables fitted on skewed tokens: the budgeted bits match what constriction's ANS really writes."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(64, 0.3), size=6)
    draw = lambda n: np.stack([rng.choice(64, n, p=p) for p in probs], axis=1)
    freq, bits = fit_token_model(draw(5000), 64)
    assert freq.dtype == np.uint32 and freq.min() >= 1 and freq.shape == (6, 64)
    assert np.all(bits < np.log2(64))  # better than uniform
    fresh = draw(4000)
    coder = constriction.stream.stack.AnsCoder()
    for j in reversed(range(6)):
        model = constriction.stream.model.Categorical(freq[j].astype(np.float64), perfect=False)
        coder.encode_reverse(fresh[:, j].astype(np.int32), model)
    real_bits = 32 * coder.num_words() / len(fresh)
    assert real_bits == pytest.approx(bits.sum(), rel=0.05)
    assert cross_entropy_bits(freq, fresh).sum() == pytest.approx(bits.sum(), rel=0.05)
    ks = [tokens_for_ratio(bits, r, 1000.0) for r in (10, 100, 1000, 10000)]
    assert ks == sorted(ks, reverse=True) and ks[0] == 6 and ks[-1] == 0
    with pytest.raises(ValueError, match="positive"):
        tokens_for_ratio(bits, 0, 1000.0)


@needs_data
def test_checkpoint_round_trip_is_exact(tiny_prior, tmp_path):
    model, _ = tiny_prior
    state = model.net.state_dict()
    names = {n for n, _ in model.net.named_parameters()}
    weights, _ = save_prior(tmp_path / "copy", state, model.token_model, dict(model.config), param_names=names)
    loaded, freq, config, _, nbytes = read_prior(weights)
    assert set(loaded) == set(state) and nbytes == weights.stat().st_size
    for name, value in state.items():  # weights were already bf16-rounded: nothing changes
        assert torch.equal(loaded[name], value.float() if value.is_floating_point() else value), name
    assert np.array_equal(freq, model.token_model) and config["token_bits"] == model.config["token_bits"]


@needs_data
def test_sampler_is_deterministic_per_tile(tiny_prior, flanders):
    model, _ = tiny_prior
    x, meta = _flanders_tiles(flanders)
    tokens = model.encode_tiles(x, n_tokens=model.n_tokens, **meta)
    assert tokens.shape == (4, model.n_tokens) and tokens.dtype == np.int32
    run = lambda seed, sl=slice(None), k=8: model.decode_tiles(
        tokens[sl, :k], tile_index=np.arange(4)[sl], seed=seed, steps=3,
        **{key: (v if key in ("wavelength", "bandwidth") else v[sl]) for key, v in meta.items()})
    a = run(0)
    assert a.shape == x.shape and np.isfinite(a).all()
    assert np.array_equal(a, run(0))
    assert not np.allclose(a, run(1))
    np.testing.assert_allclose(run(0, slice(2, 3)), a[2:3], rtol=1e-4, atol=1e-5)  # batching-independent
    assert np.isfinite(run(0, k=0)).all()  # the empty prefix (climatology) is a valid code


@needs_data
def test_api_errors_name_the_fix(tiny_prior, flanders, tmp_path):
    model, out = tiny_prior
    x, meta = _flanders_tiles(flanders)
    with pytest.raises(CubeValidationError, match="TileGrid"):
        model.encode_tiles(x[:, :, :16], n_tokens=2, **meta)
    with pytest.raises(UnknownBandError, match="drop_sel"):
        model.encode_tiles(x[:, :1], n_tokens=2, **(meta | {"wavelength": [5000.0], "bandwidth": [50.0]}))
    with pytest.raises(CubeValidationError, match="datetime64"):
        model.encode_tiles(x, n_tokens=2, **(meta | {"time": np.arange(4)}))
    with pytest.raises(ModelMismatchError, match="Decode with the prior"):
        model.decode_tiles(np.zeros((4, model.n_tokens + 1), np.int32), tile_index=np.arange(4), **meta)
    assert model.tokens_for_ratio(10, n_bands=10, itemsize=2) == model.n_tokens
    assert model.tokens_for_ratio(1e9, n_bands=10, itemsize=2) == 0
    # files: cached per (sha, device); a wrong pair of files is refused
    weights = out / "d2ar-prior.safetensors"
    assert load_model(weights, device="cpu") is load_model(weights.with_suffix(".json"), device="cpu")
    shutil.copy(weights, tmp_path / "p.safetensors")
    cfg = json.loads(weights.with_suffix(".json").read_text())
    (tmp_path / "p.json").write_text(json.dumps(cfg | {"sha256": "0" * 64}))
    with pytest.raises(ModelMismatchError, match="do not belong together"):
        load_model(tmp_path / "p.safetensors", device="cpu")
    with pytest.raises(DataNotFoundError, match="not found"):
        load_model(tmp_path / "missing.safetensors", device="cpu")


def test_stat_tokens_quantise_tile_means_and_shift_decodes():
    from xr_d2ar.model.stats import apply_means, stat_step, stat_tokens, stat_values

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3, 8, 8)).astype(np.float32) + np.array([0.5, -1.0, 3.0], np.float32)[:, None, None]
    mask = np.ones_like(x)
    mask[0, 1] = 0  # band without data -> token 0
    mask[1, 2, :4] = 0  # partly nodata: the mean is over data pixels
    x[1, 2, :4] = 100.0  # values under nodata do not count
    tok = stat_tokens(torch.from_numpy(x * mask), torch.from_numpy(mask), 4, 1000).numpy()
    assert tok.shape == (5, 4) and tok.dtype == np.int64
    assert tok[0, 1] == 0 and (tok[:, 3] == 0).all()  # absent band 3 of a 3-band tile
    mean, present = stat_values(tok, 1000)
    want = (x * mask).sum((2, 3)) / np.maximum(mask.sum((2, 3)), 1)
    ok = present[:, :3]
    assert np.abs(mean[:, :3] - want)[ok].max() <= stat_step(1000) / 2 + 1e-9
    y = rng.normal(size=(5, 3, 8, 8)).astype(np.float32)
    shifted = apply_means(y, tok[:, :2], 4, 1000)  # a prefix of 2 kept: bands 0 and 1 shifted
    got = shifted.mean(axis=(2, 3))
    assert np.allclose(got[:, :2][ok[:, :2]], mean[:, :2][ok[:, :2]], atol=1e-5)
    assert np.array_equal(shifted[0, 1], y[0, 1]) and np.array_equal(shifted[:, 2], y[:, 2])


@needs_data
def test_stat_tokens_come_first_and_fix_the_decoded_band_means(tiny_prior, flanders):
    from xr_d2ar.model.normalise import band_stats, normalise
    from xr_d2ar.model.stats import stat_step

    model, _ = tiny_prior
    s = model.net.cfg.stat_tokens
    assert s >= 2
    x, meta = _flanders_tiles(flanders)
    tokens = model.encode_tiles(x, n_tokens=model.n_tokens, **meta)
    assert np.array_equal(model.encode_tiles(x, n_tokens=s, **meta), tokens[:, :s])
    mean, std = band_stats(model.config["normalisation"], meta["sensor"], meta["wavelength"])
    want = normalise(x, mean, std).mean(axis=(2, 3))[:, :s]  # data pixels: all of these tiles
    for k in (s, model.n_tokens):
        rec = model.decode_tiles(tokens[:, :k], tile_index=np.arange(4), steps=2, **meta)
        got = normalise(rec, mean, std).mean(axis=(2, 3))[:, :s]
        # tile mean: half a step; with the block level on top, each block mean adds another half
        assert np.abs(got - want).max() <= stat_step(model.codebook_size) * (0.5 if k == s else 1.0) + 1e-3


def test_block_stat_tokens_bring_block_means_smoothly():
    from xr_d2ar.model.stats import apply_means, n_stat_total, stat_step, stat_tokens

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 2, 16, 16)).astype(np.float32)
    x[:, :, :8, :8] += 2.0  # one bright block
    mask = np.ones_like(x)
    tok = stat_tokens(torch.from_numpy(x), torch.from_numpy(mask), 3, 1000, grid=2).numpy()
    assert tok.shape == (3, n_stat_total(3, 2)) == (3, 15)
    assert (tok[:, 2] == 0).all() and (tok[:, 3 + 2 * 4 :] == 0).all()  # band 2 absent: tile and blocks
    y = rng.normal(size=(3, 2, 16, 16)).astype(np.float32)
    want = x.reshape(3, 2, 2, 8, 2, 8).mean(axis=(3, 5))
    got = apply_means(y, tok, 3, 1000, grid=2).reshape(3, 2, 2, 8, 2, 8).mean(axis=(3, 5))
    assert np.abs(got - want).max() <= stat_step(1000) + 1e-4  # tile mean + residual, each half a step
    # the correction is smooth (bilinear between block centres): no step at the block edges
    corr = apply_means(np.zeros_like(y), tok, 3, 1000, grid=2)
    jump = np.abs(np.diff(corr, axis=-1)).max()
    assert jump < 0.5 * np.abs(want[:, :, 0, 0] - want[:, :, 0, 1]).max()
    # a prefix that cuts a band's block tokens leaves that band at its tile-mean shift
    part = apply_means(y, tok[:, : 3 + 4 + 2], 3, 1000, grid=2)
    np.testing.assert_allclose(part[:, 1].mean(axis=(1, 2)), got[:, 1].mean(axis=(1, 2)), atol=stat_step(1000))
    assert np.allclose(part[:, 1] - part[:, 1].mean(axis=(1, 2), keepdims=True),
                       y[:, 1] - y[:, 1].mean(axis=(1, 2), keepdims=True), atol=1e-5)
    # each tile's correction is independent of the batch it is decoded in (bit for bit)
    one_by_one = np.concatenate([apply_means(y[i : i + 1], tok[i : i + 1], 3, 1000, grid=2) for i in range(3)])
    assert np.array_equal(one_by_one, apply_means(y, tok, 3, 1000, grid=2))


def test_finer_block_level_refines_the_coarse_one():
    from xr_d2ar.model.stats import apply_means, stat_step, stat_tokens

    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 16, 16)).astype(np.float32)
    x[:, :, :4, 4:8] += 3.0  # one bright 4 x 4 block: seen at level 4, smeared at level 2
    mask = np.ones_like(x)
    mask[1, 2] = 0.0  # tile 1 has no data in band 2: every statistic of that band absent
    one = stat_tokens(torch.from_numpy(x), torch.from_numpy(mask), 3, 1000, grid=2).numpy()
    two = stat_tokens(torch.from_numpy(x), torch.from_numpy(mask), 3, 1000, grid=[2, 4]).numpy()
    assert two.shape == (4, 3 * (1 + 4 + 16)) and np.array_equal(two[:, :15], one)  # the coarse part unchanged
    assert (two[1, [2, *range(3 + 8, 3 + 12), *range(15 + 32, 15 + 48)]] == 0).all()
    y = rng.normal(size=x.shape).astype(np.float32)
    blocks = lambda a, g: a.reshape(4, 3, g, 16 // g, g, 16 // g).mean(axis=(3, 5))
    fine = apply_means(y, two, 3, 1000, grid=[2, 4])
    ok = np.ones((4, 3), bool)
    ok[1, 2] = False
    # quantised residuals of the quantised parent: half a step each, the levels do not add up errors
    assert np.abs(blocks(fine, 4) - blocks(x, 4))[ok].max() <= 0.5 * stat_step(1000) + 1e-4
    coarse = apply_means(y, two[:, :15], 3, 1000, grid=[2, 4])  # level 4 cut off: level 2 as before
    np.testing.assert_array_equal(coarse, apply_means(y, one, 3, 1000, grid=2))
    assert np.abs(blocks(coarse, 4) - blocks(x, 4))[ok].max() > 1.0
    # a prefix ending inside level 4: bands with all 16 tokens kept use it, the others level 2
    part = apply_means(y, two[:, : 15 + 16 + 5], 3, 1000, grid=[2, 4])
    np.testing.assert_array_equal(part[:, 0], fine[:, 0])
    np.testing.assert_array_equal(part[:, 1:], coarse[:, 1:])
    one_by_one = np.concatenate([apply_means(y[i : i + 1], two[i : i + 1], 3, 1000, grid=[2, 4]) for i in range(4)])
    assert np.array_equal(one_by_one, fine)
