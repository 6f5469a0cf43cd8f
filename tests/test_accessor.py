"""``.d2ar`` accessor on real cubes with the shipped prior: layout, exact round trip, errors."""

from __future__ import annotations

import warnings

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from common import cube, prior, scratch

import xr_d2ar.accessor  # noqa: F401  (registers .d2ar)
from xr_d2ar import datasets, store
from xr_d2ar.codecs import TokenCodec, TokenCodecV3
from xr_d2ar.errors import (
    ChunkAlignmentError,
    CubeValidationError,
    MissingCRSError,
    MissingTimeError,
    ModelMismatchError,
    UnknownBandError,
)
from xr_d2ar.tiling import TileGrid

FLANDERS = "worldcereal_flanders_a_s2"  # uint16, fill 0 on the 20 m bands' last row, 4 masks
COLORADO = "landsat_colorado_tm_etm"  # int16, many nodata pixels


@pytest.fixture(scope="module")
def flanders():
    return cube(FLANDERS, 4)


@pytest.fixture(scope="module")
def tokens(flanders):
    return flanders.d2ar.compress(ratio=1000)


def assert_same_except_values(rec: xr.Dataset, src: xr.Dataset) -> None:
    """Every variable, coordinate and attribute identical, dtypes and attribute types included."""
    xr.testing.assert_identical(rec.drop_vars("reflectance"), src.drop_vars("reflectance"))
    assert list(rec.variables) == list(src.variables)
    for name, var in src.variables.items():
        assert rec[name].dtype == var.dtype, name
        assert rec[name].dims == var.dims, name
        assert rec[name].attrs.keys() == var.attrs.keys(), name
        for key, value in var.attrs.items():
            if name != "spatial_ref":
                assert type(rec[name].attrs[key]) is type(value), (name, key)
            np.testing.assert_array_equal(rec[name].attrs[key], value)
    assert rec.attrs == src.attrs
    assert rec.rio.crs == src.rio.crs


def test_token_dataset_layout(flanders, tokens):
    model = prior()
    k = model.tokens_for_ratio(
        1000, n_bands=flanders.sizes["band"], itemsize=2
    )  # 64 px: no padding
    grid = TileGrid.for_shape(flanders.sizes["y"], flanders.sizes["x"], model.tile_size)
    assert tokens["tokens"].dims == ("time", "tile_y", "tile_x", "token")
    assert (
        tokens["tokens"].shape == (4, grid.n_ty, grid.n_tx, k)
        and tokens["tokens"].dtype == np.int32
    )
    assert isinstance(tokens["tokens"].data, da.Array)  # lazy until computed or stored
    lon, lat = grid.centres(flanders)
    np.testing.assert_array_equal(tokens["tile_lat"].values, lat)
    np.testing.assert_array_equal(tokens["tile_lon"].values, lon)
    for name in ("valid", "scene_class", "label", "crop_type", "nodata"):
        assert name in tokens.data_vars
    assert tokens.rio.crs == flanders.rio.crs
    layout = store.TokenLayout.from_attrs(tokens.attrs)
    assert (layout.model_sha256, layout.model_name) == (model.sha256, model.name)
    assert (layout.n_tokens, layout.ratio, layout.dtype) == (k, 1000.0, "<u2")
    assert layout.shape == flanders["reflectance"].shape
    assert layout.fill_value == 0 and layout.scale_factor == pytest.approx(1e-4)
    assert store.TokenLayout.from_attrs(layout.to_attrs()) == layout


def test_reconstruct_restores_everything_but_the_values_exactly(flanders, tokens):
    rec = tokens.d2ar.reconstruct()
    assert isinstance(rec["reflectance"].data, da.Array)
    rec = rec.compute()
    assert_same_except_values(rec, flanders)
    values, source = rec["reflectance"].values, flanders["reflectance"].values
    assert (source == 0).any()
    np.testing.assert_array_equal(values == 0, source == 0)  # nodata exact, never invented


def test_values_are_the_priors_own_reconstruction(flanders, tokens):
    """The xarray layers add nothing to the prior's error: same as encode/decode_tiles directly."""
    model, layout = prior(), tokens.d2ar.layout()
    src = flanders["reflectance"]
    grid = layout.grid
    phys = src.values.astype(np.float32) * np.float32(layout.scale_factor)
    phys[src.values == 0] = np.nan
    tiles = grid.to_tiles(phys).transpose(0, 2, 3, 1, 4, 5).reshape(-1, src.sizes["band"], 64, 64)
    lon, lat = grid.centres(flanders)
    n = tiles.shape[0] // src.sizes["time"]
    cond = {
        "wavelength": flanders.wavelength.values,
        "bandwidth": flanders.bandwidth.values,
        "lat": np.tile(lat.ravel(), 4),
        "lon": np.tile(lon.ravel(), 4),
        "time": np.repeat(flanders.time.values, n),
        "sensor": np.repeat(flanders.sensor.values, n),
    }
    direct_tokens = model.encode_tiles(tiles, n_tokens=layout.n_tokens, **cond)
    np.testing.assert_array_equal(
        direct_tokens.reshape(tokens["tokens"].shape), tokens["tokens"].values
    )
    index = np.arange(tiles.shape[0])
    direct = model.decode_tiles(direct_tokens, tile_index=index, seed=0, steps=layout.steps, **cond)
    direct = direct.reshape(4, grid.n_ty, grid.n_tx, -1, 64, 64).transpose(0, 3, 1, 2, 4, 5)
    expected = np.clip(np.rint(grid.from_tiles(direct) / layout.scale_factor), 1, 65535)
    got = tokens.d2ar.reconstruct()["reflectance"].values.astype(np.float64)
    ok = src.values != 0
    assert np.abs(got[ok] - expected[ok]).max() <= 1  # float rounding across batch sizes only


def test_dataarray_in_dataarray_out(flanders):
    refl = flanders["reflectance"].isel(time=[0]).rename("refl")
    tokens = refl.d2ar.compress(tokens=8)
    rec = tokens.d2ar.reconstruct()
    assert isinstance(rec, xr.DataArray) and rec.name == "refl"
    xr.testing.assert_identical(rec.coords.to_dataset(), refl.coords.to_dataset())
    assert rec.dtype == refl.dtype and rec.attrs == refl.attrs


def test_nodata_heavy_cube_keeps_its_fill_pixels(tmp_path):
    src = cube(COLORADO, 6)
    fill = src["reflectance"].attrs["_FillValue"]
    tokens = src.d2ar.compress(ratio=300)
    tokens.d2ar.to_zarr(tmp_path / "c.zarr", progress=False)
    rec = xr.open_zarr(
        tmp_path / "c.zarr", consolidated=False, mask_and_scale=False
    ).d2ar.reconstruct()
    values = rec["reflectance"].values
    assert (src["reflectance"].values == fill).sum() > 1000
    np.testing.assert_array_equal(values == fill, src["reflectance"].values == fill)
    assert_same_except_values(rec.compute(), src)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zero_tokens_is_the_priors_climatology(tmp_path, zarr_format):
    src = cube("cbers4_awfi_bahia", 3)
    tokens = src.d2ar.compress(tokens=0)
    assert tokens["tokens"].shape[-1] == 0
    sizes = tokens.d2ar.to_zarr(tmp_path / "k0.zarr", zarr_format=zarr_format, progress=False)
    assert sizes.token_bytes == 0 and sizes.token_ratio == float("inf")
    rec = xr.open_dataset(tmp_path / "k0.zarr", engine="d2ar").compute()
    assert_same_except_values(rec, src)
    assert np.isfinite(datasets.to_reflectance(rec["reflectance"]).values).all()


def test_encoding_uses_the_token_codec(tokens):
    enc3, enc2 = tokens.d2ar.encoding(zarr_format=3), tokens.d2ar.encoding(zarr_format=2)
    assert isinstance(enc3["tokens"]["serializer"], TokenCodecV3)
    assert isinstance(enc2["tokens"]["compressors"][0], TokenCodec)
    assert enc3["tokens"]["chunks"] == tuple(c[0] for c in tokens["tokens"].chunks)
    assert set(enc3) >= {"tokens", "nodata", "valid", "scene_class", "label", "crop_type"}
    with pytest.raises(ValueError, match="zarr_format must be 2 or 3"):
        tokens.d2ar.encoding(zarr_format=4)


def test_to_zarr_reports_a_ratio_short_of_the_request(tokens, tmp_path):
    sizes = tokens.d2ar.to_zarr(tmp_path / "as-asked.zarr", progress=False)
    honest = tokens.assign_attrs(d2ar_ratio=sizes.token_ratio)  # asks what it gets: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        honest.d2ar.to_zarr(tmp_path / "honest.zarr", progress=False)
    greedy = tokens.assign_attrs(d2ar_ratio=sizes.token_ratio * 2)  # claims twice what it gets
    with pytest.warns(UserWarning, match=r"Asked for ratio=.*got \d+x on disk"):
        greedy.d2ar.to_zarr(tmp_path / "greedy.zarr", progress=False)


def test_exact_ratio_meets_the_request_on_disk(flanders, tmp_path):
    estimated = flanders.d2ar.compress(ratio=1000)
    exact = flanders.d2ar.compress(ratio=1000, exact_ratio=True)
    sizes = exact.d2ar.to_zarr(tmp_path / "exact.zarr", progress=False)
    assert 1000 <= sizes.token_ratio < 1100  # met, and not by leaving tokens unused
    more = flanders.d2ar.compress(tokens=exact.sizes["token"] + 1)
    assert more.d2ar.to_zarr(tmp_path / "one-more.zarr", progress=False).token_ratio < 1000
    np.testing.assert_array_equal(  # a prefix of the same tokens the lazy path makes
        exact["tokens"].values, more["tokens"].values[..., : exact.sizes["token"]]
    )
    assert exact.attrs["d2ar_ratio"] == estimated.attrs["d2ar_ratio"] == 1000
    with pytest.raises(ValueError, match="exact_ratio=True needs ratio="):
        flanders.d2ar.compress(tokens=4, exact_ratio=True)
    with pytest.raises(ValueError, match="pass them to .d2ar.to_zarr"):
        flanders.d2ar.compress(ratio=1000, scheduler="threads")


def test_to_zarr_refuses_to_overwrite_and_can_defer(tokens):
    path = scratch() / "defer.zarr"
    pending = tokens.d2ar.to_zarr(path, compute=False)
    assert hasattr(pending, "compute") and not any((path / "tokens").rglob("c/*"))
    with pytest.raises(FileExistsError, match="defer.zarr already exists. Pass mode='w'"):
        tokens.d2ar.to_zarr(path)


# ------------------------------------------------------------------ errors that name the fix


def test_missing_crs(flanders):
    no_crs = flanders.drop_vars("spatial_ref")
    no_crs.attrs = {k: v for k, v in flanders.attrs.items() if k != "crs"}
    with pytest.raises(MissingCRSError, match="write_crs"):
        no_crs.d2ar.compress()


def test_missing_dates(flanders):
    no_dates = flanders.assign_coords(time=np.arange(flanders.sizes["time"]))
    with pytest.raises(MissingTimeError, match="time"):
        no_dates.d2ar.compress()


def test_band_the_prior_does_not_know(flanders):
    alien = flanders.assign_coords(wavelength=flanders.wavelength.values * 0 + 20000.0)
    with pytest.raises(UnknownBandError, match="drop_sel"):
        alien.d2ar.compress()


def test_chunks_not_aligned_to_tiles_say_which(flanders):
    with pytest.raises(ChunkAlignmentError, match=r"along 'x'.*\(40, 24\).*cube.chunk\(x=64\)"):
        flanders.d2ar.compress(chunks={"x": 40})
    merged = flanders.d2ar.compress(chunks={"band": 5, "time": 2})  # bands are merged, not refused
    assert merged["tokens"].chunks[0] == (2, 2)


def test_rate_options_are_checked(flanders):
    with pytest.raises(ValueError, match="not both"):
        flanders.d2ar.compress(ratio=10, tokens=3)
    with pytest.raises(ValueError, match=r"tokens must be an int in \[0, 256\]"):
        flanders.d2ar.compress(tokens=1000)
    with pytest.raises(ValueError, match="positive"):
        flanders.d2ar.compress(ratio=-1)
    with pytest.raises(ValueError, match="seed must be an int >= 0. Got -1"):
        flanders.d2ar.compress(seed=-1)
    with pytest.raises(ValueError, match="steps must be an int >= 1. Got 2.5"):
        flanders.d2ar.compress(steps=2.5)
    with pytest.warns(UserWarning, match="no room for a single token"):
        assert flanders.d2ar.compress(ratio=1e9)["tokens"].shape[-1] == 0
    with pytest.warns(UserWarning, match=r"ratio=5 asks for more than prior .* about \d+x"):
        assert flanders.d2ar.compress(ratio=5)["tokens"].shape[-1] == 256
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flanders.d2ar.compress(ratio=500)  # within reach: no warning


def test_unknown_sensor_is_named_not_silently_accepted(flanders):
    typo = flanders.assign_coords(sensor=("time", ["S2A"] * flanders.sizes["time"]))
    with pytest.warns(UserWarning, match=r"sensor\(s\) \['S2A'\].*Sentinel-2A"):
        typo.d2ar.compress(ratio=1000)


def test_irregular_chunks_are_refused_with_the_fix(flanders):
    with pytest.raises(ChunkAlignmentError, match=r"one size.*\(2, 1, 1\).*cube.chunk\(time=2\)"):
        flanders.d2ar.compress(chunks={"time": (2, 1, 1)})


# ------------------------------------------------------------------ nodata and decode engines


def test_int_cube_without_fill_value_round_trips(flanders):
    src = flanders.isel(time=[0])
    src["reflectance"].attrs.pop("_FillValue")
    rec = src.d2ar.compress(ratio=1000).d2ar.reconstruct()
    assert "_FillValue" not in rec["reflectance"].attrs
    assert rec["reflectance"].dtype == np.uint16 and rec["reflectance"].compute().shape == (1, 10, 64, 64)


def test_float_cube_keeps_nan_and_fill_apart(flanders):
    src = flanders.isel(time=[0]).copy(deep=True)
    phys = datasets.to_reflectance(src["reflectance"]).astype(np.float32)  # NaN at the old fill
    n_nan = int(np.isnan(phys.values).sum()) + 25
    phys.values[0, 0, :5, :5] = np.nan
    phys.values[0, 0, 10, :7] = -9999.0
    phys.attrs = {"_FillValue": np.float32(-9999.0), "units": "1"}
    src["reflectance"] = phys
    tokens = src.d2ar.compress(ratio=1000)
    codes = tokens[store.NODATA].values
    assert codes.dtype == np.uint8
    assert (codes == store.NODATA_NAN).sum() == n_nan and (codes == store.NODATA_FILL).sum() == 7
    rec = tokens.d2ar.reconstruct()["reflectance"].values
    assert np.isnan(rec[0, 0, :5, :5]).all() and (rec[0, 0, 10, :7] == -9999.0).all()
    assert np.isnan(rec).sum() == n_nan and (rec == -9999.0).sum() == 7


def test_decode_engines_agree_and_unknown_engine_is_refused(tokens):
    cext = tokens.d2ar.reconstruct(engine="cext")["reflectance"].values.astype(int)
    torch = tokens.d2ar.reconstruct(engine="torch")["reflectance"].values.astype(int)
    assert np.abs(cext - torch).max() <= 1  # float32 rounding of two implementations
    assert (cext != torch).mean() < 0.01
    with pytest.raises(ValueError, match="engine must be one of"):
        tokens.d2ar.reconstruct(engine="gpu")


def test_reconstruct_refuses_another_prior(tokens):
    other = tokens.assign_attrs(d2ar_model_sha256="ab" * 32, d2ar_model_name="elsewhere")
    with pytest.raises(ModelMismatchError, match="'elsewhere'.*XR_D2AR_MODEL_PATH"):
        other.d2ar.reconstruct()
    with pytest.raises(ModelMismatchError, match="Got prior 'd2ar-default'"):
        other.d2ar.reconstruct(model=prior())


def test_plain_cube_has_no_layout(flanders):
    with pytest.raises(CubeValidationError, match="compress"):
        flanders.d2ar.reconstruct()


def test_a_cube_unpacked_by_xarray_is_flagged_with_the_ratio_it_really_gets():
    """xr.open_dataset unpacks int16 to float32: ratio= then counts twice the file's bytes, and
    the user is told so, with the way to compress the stored integers."""
    cube("cbers4_awfi_bahia")
    path = datasets.data_dir() / "cbers4_awfi_bahia.nc"
    with xr.open_dataset(path) as ds:
        assert ds["reflectance"].dtype == np.float32
        with pytest.warns(UserWarning, match="float32 in memory but int16 in its file.*2x"):
            ds.isel(time=slice(0, 2)).d2ar.compress(ratio=500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        datasets.open_cube(path).isel(time=slice(0, 2)).d2ar.compress(ratio=500)


def test_a_placeholder_date_is_flagged():
    """sentinel2_l1c_virginia_west's date is unknown and stored as 1970-01-01: the prior is
    conditioned on the date, so a date older than any EO satellite gets a warning."""
    src = cube("sentinel2_l1c_virginia_west").isel(y=slice(0, 64), x=slice(0, 64))
    with pytest.warns(UserWarning, match=r"\['1970-01-01'\] precede every Earth-observation"):
        src.d2ar.compress(tokens=4)


def test_a_ratio_short_because_of_chunk_headers_says_so(tmp_path):
    """One small image: the tokens fit the budget but the chunk's fixed header does not; the
    warning blames the header, not the tokens."""
    one = cube("cbers4_awfi_bahia", 1)
    with pytest.warns(UserWarning, match=r"spend \d+ of their \d+ B on headers.*one chunk already"):
        one.d2ar.compress(ratio=1000).d2ar.to_zarr(tmp_path / "one.zarr", progress=False)
