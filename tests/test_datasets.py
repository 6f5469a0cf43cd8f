"""Loading real cubes into canonical form, user cubes, validation errors, tiling and geo."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xr_d2ar
from xr_d2ar import datasets, geo
from xr_d2ar.errors import (
    CubeValidationError,
    DataNotFoundError,
    MissingCRSError,
    MissingTimeError,
    UnknownBandError,
)
from xr_d2ar.tiling import TileGrid


def _names() -> list[str]:
    try:
        return datasets.available()
    except DataNotFoundError:
        return []


pytestmark = pytest.mark.skipif(
    not _names(), reason="sample cubes not found: set XR_D2AR_DATA (docs/data.md)"
)


@pytest.mark.parametrize("name", _names())
def test_every_sample_cube_is_canonical(name):
    ds = datasets.open(name)
    datasets.validate_cube(ds)
    da = ds["reflectance"]
    assert da.dims == ("time", "band", "y", "x")
    assert np.issubdtype(da.dtype, np.integer)
    assert {"scale_factor", "add_offset", "_FillValue"} <= set(da.attrs)
    assert ds["wavelength"].dims == ("band",) and ds["sensor"].dims == ("time",)
    assert ds.rio.crs is not None
    assert ds["y"].values[0] > ds["y"].values[-1]  # north-up


def test_unknown_name_lists_available():
    with pytest.raises(DataNotFoundError, match="cbers4_awfi_bahia"):
        datasets.open("no_such_cube")


def test_data_dir_option_and_missing_folder(tmp_path):
    with xr_d2ar.set_options(data_dir=str(tmp_path)):
        assert datasets.data_dir() == tmp_path
        assert datasets.available() == []
    with xr_d2ar.set_options(data_dir=str(tmp_path / "typo")), pytest.raises(  # never a silent fallback
        DataNotFoundError, match="typo.*not a folder"
    ):
        datasets.data_dir()


def test_set_options_rejects_unknown_and_bad_values():
    with pytest.raises(ValueError, match="Unknown option"):
        xr_d2ar.set_options(colour="red")
    with pytest.raises(ValueError, match="Got 3 instead"):
        xr_d2ar.set_options(progress=3)


def test_to_reflectance_masks_fill_and_scales(cbers):
    da = cbers["reflectance"]
    phys = datasets.to_reflectance(da)
    fill = da.attrs["_FillValue"]
    raw = da.values
    assert phys.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(phys.values), raw == fill)
    ok = raw != fill
    np.testing.assert_allclose(phys.values[ok], raw[ok] * 1e-4, rtol=1e-6)


def test_to_reflectance_drops_packing_attrs_and_stays_lazy(cbers):
    da = cbers["reflectance"].chunk({"time": 1})
    phys = datasets.to_reflectance(da)
    assert phys.chunks == da.chunks and phys.dtype == np.float32
    assert not {"scale_factor", "add_offset", "_FillValue"} & set(phys.attrs)
    assert phys.attrs["units"] == da.attrs["units"]


def test_stored_to_physical_is_float32_with_nan_at_fill_only():
    stored = np.array([[0, 1, 2], [3, 4, 0]], np.uint16)
    phys = datasets.stored_to_physical(stored, 0.5, 1.0, np.uint16(0))
    assert phys.dtype == np.float32
    np.testing.assert_array_equal(phys, [[np.nan, 1.5, 2.0], [2.5, 3.0, np.nan]])
    floats = np.array([np.inf, np.nan, -9999.0, 1.0], np.float32)
    for fill in (None, np.nan, np.float32(np.nan)):  # nothing to mask; inf kept
        np.testing.assert_array_equal(datasets.stored_to_physical(floats, 1.0, 0.0, fill), floats)
    np.testing.assert_array_equal(
        datasets.stored_to_physical(floats, 1.0, 0.0, -9999.0), [np.inf, np.nan, np.nan, 1.0]
    )


def test_split_time_holds_out_last_dates(flanders):
    train, held = datasets.split_time(flanders, holdout=0.2)
    assert train.sizes["time"] + held.sizes["time"] == flanders.sizes["time"]
    assert held.sizes["time"] == round(0.2 * flanders.sizes["time"])
    assert train["time"].values.max() < held["time"].values.min()
    with pytest.raises(ValueError, match="fraction"):
        datasets.split_time(flanders, holdout=1.5)


def test_lonlat_matches_recorded_centre(flanders):
    ny, nx = flanders.sizes["y"], flanders.sizes["x"]
    cy = flanders["y"].values[[ny // 2 - 1, ny // 2]].mean()
    cx = flanders["x"].values[[nx // 2 - 1, nx // 2]].mean()
    lon, lat = xr_d2ar.geo.lonlat(flanders, cy, cx)
    assert abs(lon - flanders.attrs["geospatial_lon_center"]) < 1e-3
    assert abs(lat - flanders.attrs["geospatial_lat_center"]) < 1e-3


def test_tile_grid_round_trip_and_centres(cbers):
    arr = cbers["reflectance"].values  # (18, 4, 50, 50)
    grid = TileGrid.for_shape(50, 50, 32)
    tiles = grid.to_tiles(arr)
    assert tiles.shape == (18, 4, 2, 2, 32, 32)
    np.testing.assert_array_equal(grid.from_tiles(tiles), arr)
    np.testing.assert_array_equal(tiles[..., 0, 0, :, :], arr[..., :32, :32])
    lon, lat = grid.centres(cbers)
    assert lon.shape == (2, 2) and np.all(np.diff(lon, axis=1) > 0) and np.all(np.diff(lat, axis=0) < 0)
    with pytest.raises(ValueError, match="positive int"):
        TileGrid(50, 50, 0)


# ----------------------------------------------------------------- user cubes


def _user_cube(flanders: xr.Dataset) -> xr.Dataset:
    return flanders[["reflectance"]].isel(time=slice(0, 3)).drop_vars(
        ["wavelength", "bandwidth", "sensor_wavelength", "sensor_bandwidth"]
    )


def test_open_cube_from_netcdf_roundtrip(tmp_path, flanders):
    path = tmp_path / "cube.nc"
    subset = flanders[["reflectance", "valid"]].isel(time=slice(0, 3))
    subset.to_netcdf(path, engine=datasets.NETCDF_ENGINE)
    ds = datasets.open_cube(path)
    assert ds["reflectance"].dtype == np.uint16
    np.testing.assert_array_equal(ds["reflectance"].values, flanders["reflectance"].values[:3])
    assert "valid" in ds and ds.rio.crs == flanders.rio.crs


def test_open_cube_from_zarr_restores_stored_integers(tmp_path, flanders):
    path = tmp_path / "cube.zarr"
    flanders[["reflectance"]].isel(time=slice(0, 2)).to_zarr(path, zarr_format=3)
    decoded = xr.open_zarr(path)  # CF-decoded floats with NaN
    assert np.issubdtype(decoded["reflectance"].dtype, np.floating)
    ds = datasets.open_cube(decoded)
    assert ds["reflectance"].dtype == np.uint16
    np.testing.assert_array_equal(ds["reflectance"].values, flanders["reflectance"].values[:2])
    assert float(ds["reflectance"].attrs["scale_factor"]) == pytest.approx(1e-4)


def test_open_cube_from_geotiff_needs_time_then_works(tmp_path, flanders):
    one = flanders["reflectance"].isel(time=0)
    path = tmp_path / "scene.tif"
    one.rio.to_raster(path)
    with pytest.raises(MissingTimeError, match="time="):
        datasets.open_cube(path)
    with pytest.raises(UnknownBandError, match="wavelength="):
        datasets.open_cube(path, time="2018-06-01")
    wl = flanders["wavelength"].values
    ds = datasets.open_cube(path, time="2018-06-01", wavelength=wl, bandwidth=flanders["bandwidth"].values)
    assert ds["reflectance"].dims == ("time", "band", "y", "x")
    np.testing.assert_array_equal(ds["reflectance"].values[0], one.values)
    assert ds.rio.crs == flanders.rio.crs
    # one image takes one date: two would copy it silently into two dates
    with pytest.raises(MissingTimeError, match="one image .* Got 2 dates"):
        datasets.open_cube(path, time=["2018-06-01", "2018-07-01"], wavelength=wl,
                           bandwidth=flanders["bandwidth"].values)
    with pytest.raises(MissingTimeError, match="Got 'junk'"):
        datasets.open_cube(path, time="junk")


def test_dates_are_checked_count_nat_and_presence(flanders):
    """A cube's dates condition the prior: a wrong count, a NaT or no time dimension at all is
    refused with the fix, never duplicated, misaligned or decoded from a missing date."""
    n = flanders.sizes["time"]
    with pytest.raises(MissingTimeError, match=f"1 date\\(s\\) for a cube of {n} images"):
        datasets.open_cube(flanders, time="2020-01-01")
    times = flanders["time"].values.copy()
    times[1] = np.datetime64("NaT")
    with pytest.raises(MissingTimeError, match=r"NaT\) at position\(s\) \[1\]"):
        datasets.validate_cube(flanders.assign_coords(time=times))
    with pytest.raises(MissingTimeError, match="expand_dims"):
        datasets.validate_cube(flanders.isel(time=0))
    with pytest.raises(CubeValidationError, match="Got \\['refl'"):
        datasets.validate_cube(flanders.rename(reflectance="refl"))


def test_open_cube_sensor_table_fills_wavelengths(flanders):
    ds = datasets.open_cube(_user_cube(flanders), sensor="Sentinel-2A")
    np.testing.assert_allclose(ds["wavelength"].values, flanders["wavelength"].values, atol=15)


def test_open_cube_errors_name_the_fix(flanders):
    cube = _user_cube(flanders)
    with pytest.raises(UnknownBandError, match="wavelength=") as info:
        datasets.open_cube(cube.assign_coords(sensor=("time", ["mystery"] * 3)))
    assert info.value.bands == [str(b) for b in flanders["band"].values]
    no_crs = cube.drop_vars("spatial_ref")
    no_crs["reflectance"].attrs.pop("grid_mapping", None)
    no_crs.attrs.pop("crs", None)  # rioxarray also reads a global 'crs' attribute
    with pytest.raises(MissingCRSError, match="crs="):
        datasets.open_cube(no_crs, sensor="Sentinel-2A")
    with pytest.raises(MissingCRSError, match="global 'crs' attribute \\('not a crs'\\) is not"):
        datasets.open_cube(no_crs.assign_attrs(crs="not a crs"), sensor="Sentinel-2A")
    ok = datasets.open_cube(no_crs, sensor="Sentinel-2A", crs="EPSG:32631")
    assert ok.rio.crs.to_epsg() == 32631
    with pytest.raises(CubeValidationError, match="'EPSG:999999' is not a coordinate reference system"):
        datasets.open_cube(no_crs, sensor="Sentinel-2A", crs="EPSG:999999")
    wrong = datasets.open_cube(no_crs, sensor="Sentinel-2A", crs="EPSG:4326")  # metres read as degrees
    with pytest.raises(CubeValidationError, match="fall off the Earth there. Give the CRS"):
        geo.lonlat(wrong, wrong.y.values, wrong.x.values)
    with pytest.raises(UnknownBandError, match="one value per band"):
        datasets.open_cube(cube, wavelength=[500.0, 600.0])
    with pytest.raises(CubeValidationError, match="band"):
        datasets.open_cube(cube.rename(band="channel"), sensor="Sentinel-2A")
    with pytest.raises(TypeError, match="Got list"):
        datasets.open_cube([1, 2, 3])
    with pytest.raises(CubeValidationError, match="dims"):
        datasets.validate_cube(flanders.transpose("band", "time", "y", "x"))


def test_open_cube_keeps_grid_variables_and_names_what_it_leaves_out(flanders):
    src = flanders.isel(time=slice(0, 2)).assign(
        cloud_prob=flanders["valid"].isel(time=slice(0, 2)) * 0.5,  # (time, y, x): kept
        hist=(("bin",), np.arange(4)),  # another dimension: cannot travel with the cube
    )
    with pytest.warns(UserWarning, match=r"left out: hist\('bin',\)"):
        ds = datasets.open_cube(src)
    for name in ("valid", "scene_class", "label", "crop_type", "cloud_prob"):
        assert ds[name].dims == src[name].dims
        np.testing.assert_array_equal(ds[name].values, src[name].values)


def test_open_cube_refuses_a_crs_that_contradicts_the_source(flanders):
    with pytest.raises(CubeValidationError, match="already has a CRS.*reproject"):
        datasets.open_cube(flanders, crs="EPSG:4326")
    assert datasets.open_cube(flanders, crs="EPSG:32631").rio.crs.to_epsg() == 32631


@pytest.mark.parametrize("name, sensor", [("cbers4_awfi_bahia", "CBERS-4_AWFI"),
                                          ("landsat_colorado_tm_etm", "landsat-5 tm")])
def test_sensor_tables_cover_the_sample_sensors(name, sensor):
    """A cube that names its sensor (written loosely) and bands gets the wavelengths the sample
    cubes carry, within a few nm (TM and ETM+ differ a little in the near infrared)."""
    src = datasets.open(name)
    bare = src.drop_vars(["wavelength", "bandwidth", "sensor"])
    ds = datasets.open_cube(bare, sensor=sensor)
    np.testing.assert_allclose(ds["wavelength"].values, src["wavelength"].values, atol=3)
    np.testing.assert_allclose(ds["bandwidth"].values, src["bandwidth"].values, atol=6)
    with pytest.raises(UnknownBandError, match="CBERS-4 AWFI"):
        datasets.open_cube(bare, sensor="mystery")
