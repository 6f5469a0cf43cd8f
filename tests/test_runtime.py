"""CPU decode runtime on cext: equal to torch's decode within tolerance on real tiles, and
bit-identical across cext backends, batch sizes and thread counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xr_d2ar import datasets, kernels, runtime
from xr_d2ar.errors import DataNotFoundError, ModelMismatchError

model_api = pytest.importorskip("xr_d2ar.model")


@pytest.fixture(scope="module")
def case() -> tuple:
    """Prior, tokens of 3 real Sentinel-2 tiles (Flanders) and their decode arguments."""
    try:
        ds = datasets.open("worldcereal_flanders_a_s2")
    except DataNotFoundError as exc:
        pytest.skip(f"sample cubes not found: {exc}")
    model = model_api.load_model(device="cpu")
    t = model.tile_size
    times = [5, 40, 70]
    refl = datasets.to_reflectance(
        ds["reflectance"].isel(time=times, y=slice(0, t), x=slice(0, t))).values
    kw = {
        "wavelength": ds.wavelength.values,
        "bandwidth": ds.bandwidth.values,
        "lat": np.full(3, float(ds.attrs["geospatial_lat_center"])),
        "lon": np.full(3, float(ds.attrs["geospatial_lon_center"])),
        "time": ds.time.values[times],
        "sensor": ds.sensor.values[times],
    }
    tokens = model.encode_tiles(refl.astype(np.float32), n_tokens=32, **kw)
    return model, tokens, kw


def test_decode_matches_torch(case: tuple) -> None:
    model, tokens, kw = case
    index = np.array([7, 8, 9])
    want = model.decode_tiles(tokens, tile_index=index, seed=3, steps=4, **kw)
    got = runtime.decode_tiles(model, tokens, tile_index=index, seed=3, steps=4, **kw)
    assert got.shape == want.shape == (3, len(kw["wavelength"]), model.tile_size, model.tile_size)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_decode_bit_identical_across_backends(case: tuple) -> None:
    model, tokens, kw = case
    one = {k: v[:1] for k, v in kw.items() if k not in ("wavelength", "bandwidth")}
    args = dict(tile_index=np.array([4]), steps=1, wavelength=kw["wavelength"],
                bandwidth=kw["bandwidth"], **one)
    results = {}
    for name in kernels.backend_features()["available"]:
        previous = kernels.set_backend(name)
        try:
            results[name] = runtime.decode_tiles(model, tokens[:1], **args)
        finally:
            kernels.set_backend(previous)
    ref = results.pop("ref")
    assert results, "only the reference backend is available here"
    for name, got in results.items():
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32)), name


def test_decode_independent_of_batching_and_threads(case: tuple) -> None:
    model, tokens, kw = case
    decoder = runtime.CextDecoder(model)
    index = np.array([11, 12, 13])
    a = decoder.decode_tiles(tokens, tile_index=index, steps=2, batch=1, threads=3, **kw)
    b = decoder.decode_tiles(tokens, tile_index=index, steps=2, batch=8, threads=1, **kw)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))
    c = decoder.decode_tiles(tokens[1:2], tile_index=index[1:2], steps=2,
                             **{k: (v if k in ("wavelength", "bandwidth") else v[1:2])
                                for k, v in kw.items()})
    assert np.array_equal(c.view(np.uint32), a[1:2].view(np.uint32))


def test_fused_flow_blocks_equal_op_by_op(case: tuple) -> None:
    """nn.FlowBlock (one cext call per block) gives the op-by-op numpy runtime's bits."""
    model, tokens, kw = case
    index = np.array([2, 3, 4])
    fused = runtime.CextDecoder(model)
    assert fused.blocks is not None
    plain = runtime.CextDecoder(model)
    plain.blocks = None  # the op-by-op path of nn.attention / nn.mlp / nn.layer_norm
    a = fused.decode_tiles(tokens, tile_index=index, steps=2, **kw)
    b = plain.decode_tiles(tokens, tile_index=index, steps=2, **kw)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_decode_rejects_bad_input(case: tuple) -> None:
    model, tokens, kw = case
    with pytest.raises(ModelMismatchError, match="Tokens do not fit prior"):
        runtime.decode_tiles(model, tokens + model.codebook_size, tile_index=[0, 1, 2], **kw)
    with pytest.raises(ValueError, match="solver must be one of"):
        runtime.decode_tiles(model, tokens, tile_index=[0, 1, 2], solver="rk4", **kw)
    with pytest.raises(ValueError, match="tile_index needs one id per tile"):
        runtime.decode_tiles(model, tokens, tile_index=[0], **kw)


def test_auto_engine_uses_cext_only_where_it_was_measured_faster(monkeypatch) -> None:
    import functools
    import types

    from xr_d2ar import parallel
    from xr_d2ar.errors import KernelError

    model = model_api.load_model(device="cpu")
    here = kernels.backend() in runtime.FASTER_THAN_TORCH
    assert runtime.preferred(model) is here
    chosen = parallel._decoder(model, "auto")
    assert isinstance(chosen, functools.partial) is here  # the runtime, or model.decode_tiles
    assert parallel._decoder(model, "torch") == model.decode_tiles
    assert not runtime.preferred(types.SimpleNamespace(device="cuda:0"))  # GPU models: torch
    monkeypatch.setattr(kernels, "backend", lambda: "avx512")  # faster from 4 tiles per torch thread
    monkeypatch.setattr(runtime, "usable_cores", lambda: 16)  # on a machine of several cores
    enough = runtime.FASTER_FROM_TILES_PER_THREAD["avx512"] * torch.get_num_threads()
    assert runtime.preferred(model, enough) and not runtime.preferred(model, enough - 1)
    assert not runtime.preferred(model)  # the work unknown: torch
    assert isinstance(parallel._decoder(model, "auto", enough), functools.partial)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 1)  # one core: parity, torch stays
    assert not runtime.preferred(model, 10 * enough)
    monkeypatch.setattr(kernels, "backend", lambda: "sme")  # not measured: torch
    assert not runtime.preferred(model, 10 * enough)

    def missing() -> str:
        raise KernelError("The compiled kernel library xr_d2ar.kernels._cext is not built.")

    monkeypatch.setattr(kernels, "backend", missing)  # no C library: torch still decodes
    assert not runtime.preferred(model) and parallel._decoder(model, "auto") == model.decode_tiles


def test_each_prior_gets_one_cext_decoder_whatever_the_threads(monkeypatch) -> None:
    import threading
    import time
    import types
    from concurrent.futures import ThreadPoolExecutor

    from xr_d2ar.runtime import decoder

    built = []

    class Counting:
        def __init__(self, model) -> None:
            built.append(model.sha256)
            time.sleep(0.05)  # a slow weight copy: the other threads arrive meanwhile

        def decode_tiles(self, tokens, **kwargs):
            return threading.get_ident()

    monkeypatch.setattr(decoder, "CextDecoder", Counting)
    monkeypatch.setattr(decoder, "_DECODERS", {})
    prior = types.SimpleNamespace(sha256="f" * 64)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: runtime.decode_tiles(prior, np.zeros((1, 1))), range(8)))
    assert built == [prior.sha256]
