"""Dask layer: the model never travels in the graph; local and distributed runs; resources."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xarray as xr
from common import cube, prior

import xr_d2ar.accessor  # noqa: F401
from xr_d2ar import datasets, parallel
from xr_d2ar.backend import open_dataset
from xr_d2ar.codecs import lookup

FLANDERS = "worldcereal_flanders_a_s2"


def _graph_bytes(collection) -> int:
    return len(pickle.dumps(dict(collection.__dask_graph__())))


def test_model_is_never_in_the_task_graph():
    cube(FLANDERS)  # skips without data
    with datasets.open(FLANDERS, chunks={}) as lazy:  # the graph reads from the file
        tokens = lazy.isel(time=slice(0, 6)).d2ar.compress(ratio=1000, chunks={"time": 2})
        rec = tokens.d2ar.reconstruct()
        for collection in (tokens["tokens"].data, rec["reflectance"].data):
            assert _graph_bytes(collection) < 200_000 < prior().nbytes / 10
        assert tokens["tokens"].data.npartitions == 3


def test_local_compute_shows_a_progress_bar(capfd):
    tokens = cube(FLANDERS, 2).d2ar.compress(tokens=4)
    (values,) = parallel.compute(tokens["tokens"].data, progress=True)
    assert values.shape == tokens["tokens"].shape
    assert "d2ar" in capfd.readouterr().err


def test_resources_need_a_cluster():
    tokens = cube(FLANDERS, 2).d2ar.compress(tokens=4)
    with pytest.raises(ValueError, match="scheduler='tcp://...'"):
        parallel.compute(tokens["tokens"].data, resources={"GPU": 1})
    with pytest.raises(TypeError, match="distributed.Client"):
        parallel.compute(tokens["tokens"].data, scheduler=3)


def _models_here() -> list:
    return sorted(lookup._models)


async def _give_gpu(dask_worker) -> None:
    await dask_worker.set_resources(GPU=1)


@pytest.mark.slow
def test_round_trips_on_a_local_cluster(tmp_path):
    """v2 through a Client, v3 through the scheduler address; encode pinned by resources."""
    from distributed import Client, LocalCluster

    src = cube(FLANDERS, 6)
    local = src.d2ar.compress(ratio=1000, chunks={"time": 2})
    local_tokens = local["tokens"].values
    local_values = local.d2ar.reconstruct(engine="cext")["reflectance"].values
    exact_local = src.d2ar.compress(ratio=1000, exact_ratio=True)["tokens"].values
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        gpu, cpu = sorted(client.scheduler_info()["workers"])
        client.run(_give_gpu, workers=[gpu])
        paths = {fmt: tmp_path / f"cluster-v{fmt}.d2ar.zarr" for fmt in (2, 3)}
        for fmt, scheduler in ((2, client), (3, cluster.scheduler_address)):
            sizes = src.d2ar.compress(ratio=1000, chunks={"time": 2}).d2ar.to_zarr(
                paths[fmt],
                zarr_format=fmt,
                progress=False,
                resources={"GPU": 1},
                scheduler=scheduler,
            )
            assert sizes.token_ratio > 100
        exact = src.d2ar.compress(  # the exact-ratio pass runs where it is told, too
            ratio=1000, exact_ratio=True, scheduler=cluster.scheduler_address, resources={"GPU": 1}
        )
        np.testing.assert_array_equal(exact["tokens"].values, exact_local)
        placed = client.run(_models_here)
        assert len(placed[gpu]) == 1 and placed[cpu] == []  # resources= pinned the work
        outs = {
            fmt: open_dataset(path, chunks={}, decode_engine="cext").compute()
            for fmt, path in paths.items()
        }
        placed = client.run(_models_here)
        assert len(placed[cpu]) == 1 and len(placed[gpu]) == 1  # loaded once per worker
    for fmt, out in outs.items():
        stored = xr.open_zarr(paths[fmt], consolidated=False)["tokens"].values
        np.testing.assert_array_equal(stored, local_tokens)
        xr.testing.assert_identical(out.drop_vars("reflectance"), src.drop_vars("reflectance"))
        assert out["reflectance"].dtype == src["reflectance"].dtype
        np.testing.assert_array_equal(out["reflectance"].values, local_values)  # cext: same bits


def _alt_prior(folder) -> str:
    """The shipped prior rewritten as another file (other header bytes: another sha256)."""
    import json

    from safetensors.torch import load_file, save_file

    from xr_d2ar.model import DEFAULT_PRIOR
    from xr_d2ar.model.checkpoint import prior_paths, sha256_file

    weights, config_path = prior_paths(DEFAULT_PRIOR)
    alt = folder / "alt-prior.safetensors"
    save_file(load_file(weights), str(alt), metadata={"format": "xr_d2ar.prior", "version": "1",
                                                     "note": "test copy"})
    config = json.loads(config_path.read_text())
    config.update(name="alt-prior", weights=alt.name, sha256=sha256_file(alt))
    alt.with_suffix(".json").write_text(json.dumps(config))
    return str(alt)


@pytest.mark.slow
def test_a_non_default_prior_runs_on_worker_processes(tmp_path):
    """Workers load a loaded model's own weights file; reading back names it explicitly."""
    from distributed import Client, LocalCluster

    from xr_d2ar.model import load_model

    alt = load_model(_alt_prior(tmp_path), device="cpu")
    assert alt.sha256 != prior().sha256 and alt.path == (tmp_path / "alt-prior.safetensors")
    src = cube(FLANDERS, 2)
    store_path = tmp_path / "alt.d2ar.zarr"
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        src.d2ar.compress(alt, ratio=1000, chunks={"time": 1}).d2ar.to_zarr(store_path)
        out = xr.open_dataset(
            store_path, engine="d2ar", chunks={}, model=str(alt.path), decode_engine="cext"
        ).compute()
    stored = xr.open_zarr(store_path, consolidated=False)
    assert stored.attrs["d2ar_model_sha256"] == alt.sha256
    expected = stored.d2ar.reconstruct(model=alt, engine="cext")["reflectance"].values
    np.testing.assert_array_equal(out["reflectance"].values, expected)
