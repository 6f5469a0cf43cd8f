"""Real sample cubes and the canonical cube form used by every layer of xr_d2ar.

Canonical form (what :func:`open` returns and :func:`open_cube` produces)::

    reflectance(time, band, y, x)   stored dtype (e.g. uint16/int16, or float32), NOT scaled;
                                    attrs scale_factor, add_offset (physical = stored * scale + offset),
                                    _FillValue (nodata; NaN for float cubes), units ("1" or "DN")
    coords  time (datetime64[ns]), band (str), wavelength / bandwidth (band; nm), y / x (projected m),
            sensor (time; str), spatial_ref (CF grid mapping: ``ds.rio.crs`` works)
    optional valid(time, y, x) uint8 (1 = clear), scene_class(time, y, x), label(y, x), crop_type(y, x)

The sample cubes live in ``$XR_D2AR_DATA`` or ``xr_d2ar.set_options(data_dir=...)``, else in
``../shared/data`` next to the working directory or the source checkout. Each cube's provenance
and licence is in its ``source`` / ``license`` attributes and in ``docs/data.md``.
"""

from __future__ import annotations

import builtins
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rioxarray  # registers .rio: canonical cubes promise ds.rio.crs works
import xarray as xr
from pyproj import CRS

from xr_d2ar import geo
from xr_d2ar._options import OPTIONS
from xr_d2ar.errors import (
    CubeValidationError,
    DataNotFoundError,
    MissingCRSError,
    MissingTimeError,
    UnknownBandError,
)
from xr_d2ar.packing import stored_to_physical

__all__ = [
    "NETCDF_ENGINE",
    "SENSOR_BANDS",
    "sensor_table",
    "available",
    "data_dir",
    "open",
    "open_cube",
    "split_time",
    "stored_to_physical",
    "to_reflectance",
    "validate_cube",
]

DIMS = ("time", "band", "y", "x")

#: Published band centre wavelength and bandwidth (nm) of common sensors, by band name.
#: Used by :func:`open_cube` when a user's cube names its sensor and bands but not their wavelengths.
SENSOR_BANDS: dict[str, dict[str, tuple[float, float]]] = {
    "Sentinel-2": {
        "B01": (442.7, 21.0), "B02": (492.4, 66.0), "B03": (559.8, 36.0), "B04": (664.6, 31.0),
        "B05": (704.1, 15.0), "B06": (740.5, 15.0), "B07": (782.8, 20.0), "B08": (832.8, 106.0),
        "B8A": (864.7, 21.0), "B09": (945.1, 20.0), "B10": (1373.5, 31.0), "B11": (1613.7, 91.0),
        "B12": (2202.4, 175.0),
    },
    "Landsat-8": {
        "B1": (443.0, 16.0), "B2": (482.0, 60.0), "B3": (561.4, 57.0), "B4": (654.6, 37.0),
        "B5": (864.6, 28.0), "B6": (1608.9, 85.0), "B7": (2200.7, 187.0), "B8": (589.5, 172.0),
        "B9": (1373.4, 20.0), "B10": (10895.0, 590.0), "B11": (12005.0, 1010.0),
    },
}
SENSOR_BANDS["Landsat-9"] = SENSOR_BANDS["Landsat-8"]
# Landsat 4-5 TM and 7 ETM+ (USGS band designations: centre and width of each band's range) and
# CBERS-4 AWFI (INPE: 450-520, 520-590, 630-690, 770-890 nm), as the sample cubes carry them.
SENSOR_BANDS["Landsat-5"] = {
    "B1": (485.0, 70.0), "B2": (560.0, 80.0), "B3": (660.0, 60.0), "B4": (830.0, 140.0),
    "B5": (1650.0, 200.0), "B6": (11450.0, 2100.0), "B7": (2215.0, 270.0),
}
SENSOR_BANDS["Landsat-4"] = SENSOR_BANDS["Landsat-5"]
SENSOR_BANDS["Landsat-7"] = {
    "B1": (482.5, 65.0), "B2": (565.0, 80.0), "B3": (660.0, 60.0), "B4": (835.0, 130.0),
    "B5": (1650.0, 200.0), "B6": (11450.0, 2100.0), "B7": (2220.0, 260.0), "B8": (710.0, 380.0),
}
SENSOR_BANDS["CBERS-4 AWFI"] = {
    "B13": (485.0, 70.0), "B14": (555.0, 70.0), "B15": (660.0, 60.0), "B16": (830.0, 120.0),
}


def _sensor_key(name: str) -> str:
    """A sensor name compared loosely: case, spaces, '_' and '-' do not matter."""
    return re.sub(r"[\s_-]+", "", name).lower()


def sensor_table(sensor: str) -> dict[str, tuple[float, float]] | None:
    """The band table of :data:`SENSOR_BANDS` whose name starts ``sensor`` (compared loosely:
    ``"cbers-4_awfi"``, ``"Landsat-7 ETM+"`` and ``"sentinel-2a"`` all match), or None."""
    key = _sensor_key(sensor)
    return next((t for name, t in SENSOR_BANDS.items() if key.startswith(_sensor_key(name))), None)

_GEOTIFF_SUFFIXES = (".tif", ".tiff", ".gtiff")
_NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".h5")
#: xarray engine for every NetCDF read and write: h5netcdf is a declared dependency, so the same
#: reader runs everywhere (netCDF4, if also installed, bundles its own HDF5; mixing the two HDF5
#: builds in one process can crash).
NETCDF_ENGINE = "h5netcdf"


# --------------------------------------------------------------------------- sample cubes


def data_dir() -> Path:
    """Return the folder that holds the sample cubes.

    Order: ``set_options(data_dir=...)``, ``$XR_D2AR_DATA``, ``../shared/data`` beside the current
    directory, ``../shared/data`` beside the source checkout.

    Raises
    ------
    DataNotFoundError
        If a configured folder (option or environment variable) does not exist, or none of the
        default folders does.
    """
    configured = OPTIONS["data_dir"] or os.environ.get("XR_D2AR_DATA")
    if configured:
        if not Path(configured).is_dir():
            source = "set_options(data_dir=...)" if OPTIONS["data_dir"] else "$XR_D2AR_DATA"
            raise DataNotFoundError(
                f"{source} is {os.fspath(configured)!r}, which is not a folder. Point it at the "
                "folder of the sample cubes (*.nc); docs/data.md says where each cube comes from."
            )
        return Path(configured)
    candidates = [
        Path.cwd().parent / "shared" / "data",
        Path(__file__).resolve().parents[2] / "shared" / "data",
    ]
    for path in candidates:
        if path.is_dir():
            return path
    raise DataNotFoundError(
        "No sample-cube folder found. Looked in: "
        + ", ".join(str(p) for p in candidates)
        + ". Set XR_D2AR_DATA=/path/to/data or xr_d2ar.set_options(data_dir=...); "
        "docs/data.md says where each cube comes from."
    )


def available() -> list[str]:
    """Names of the sample cubes in :func:`data_dir` (file stems of ``*.nc``), sorted."""
    return sorted(p.stem for p in data_dir().glob("*.nc"))


def open(name: str, *, chunks: dict[str, int] | None = None) -> xr.Dataset:
    """Open a sample cube by name, in canonical form.

    Parameters
    ----------
    name : str
        A name from :func:`available`, e.g. ``"worldcereal_flanders_a_s2"``.
    chunks : dict, optional
        Dask chunks (as for :func:`xarray.open_dataset`); ``None`` loads lazily without Dask.

    Returns
    -------
    xarray.Dataset
        ``reflectance(time, band, y, x)`` in the stored integer dtype plus masks and labels.

    Examples
    --------
    >>> import xr_d2ar
    >>> ds = xr_d2ar.datasets.open("cbers4_awfi_bahia")
    >>> ds.reflectance.dims
    ('time', 'band', 'y', 'x')
    """
    root = data_dir()
    path = root / f"{name}.nc"
    if not path.is_file():
        raise DataNotFoundError(
            f"No sample cube named {name!r} in {root}. Available: {', '.join(available())}.",
            name=name,
        )
    ds = xr.open_dataset(path, engine=NETCDF_ENGINE, mask_and_scale=False, chunks=chunks)
    return _canonicalise_attrs(ds)


def _canonicalise_attrs(ds: xr.Dataset) -> xr.Dataset:
    """Make scale/offset/fill explicit attrs of ``reflectance`` (1/0 for DN cubes)."""
    da = ds["reflectance"]
    attrs = dict(da.attrs)
    attrs.setdefault("scale_factor", np.float32(1.0))
    attrs.setdefault("add_offset", np.float32(0.0))
    if "_FillValue" not in attrs and np.issubdtype(da.dtype, np.floating):
        attrs["_FillValue"] = np.float32(np.nan)
    ds["reflectance"] = da.assign_attrs(attrs)
    return ds


# --------------------------------------------------------------------------- physical values


def to_reflectance(da: xr.DataArray) -> xr.DataArray:
    """Physical values of a canonical ``reflectance`` array: ``stored * scale + offset``, NaN at nodata.

    Parameters
    ----------
    da : xarray.DataArray
        Canonical stored values (any of time/band/y/x dims, NumPy or Dask), attrs
        ``scale_factor``, ``add_offset``, ``_FillValue`` (see :func:`stored_to_physical`).

    Returns
    -------
    xarray.DataArray
        float32, same dims/coords/chunks (lazy stays lazy); attrs without the packing keys.
    """
    phys = xr.apply_ufunc(
        stored_to_physical,
        da,
        kwargs={
            "scale_factor": float(da.attrs.get("scale_factor", 1.0)),
            "add_offset": float(da.attrs.get("add_offset", 0.0)),
            "fill_value": da.attrs.get("_FillValue"),
        },
        dask="parallelized",
        output_dtypes=[np.float32],
        keep_attrs=False,
    )
    keep = {k: v for k, v in da.attrs.items() if k not in ("scale_factor", "add_offset", "_FillValue")}
    return phys.assign_attrs(keep)


# --------------------------------------------------------------------------- user cubes


def open_cube(
    source: str | os.PathLike | xr.Dataset | xr.DataArray,
    *,
    variable: str | None = None,
    crs: Any = None,
    time: Any = None,
    wavelength: Sequence[float] | None = None,
    bandwidth: Sequence[float] | None = None,
    sensor: str | None = None,
) -> xr.Dataset:
    """Bring a user's GeoTIFF / NetCDF / Zarr cube (or an in-memory object) into canonical form.

    Parameters
    ----------
    source : path or xarray object
        ``*.tif`` (read with rioxarray), ``*.nc``, a Zarr store folder (``*.zarr`` or any folder),
        an :class:`xarray.Dataset` or :class:`xarray.DataArray`.
    variable : str, optional
        Name of the reflectance variable when the Dataset has several candidates.
    crs : optional
        CRS to use when the source has none (anything :class:`pyproj.CRS` accepts, e.g.
        ``"EPSG:32631"``); refused when it contradicts the source's own CRS.
    time : optional
        Observation time(s) when the source has no ``time`` dimension (one value per image).
    wavelength, bandwidth : sequence of float, optional
        Band centre wavelengths and bandwidths in nm, one per band, when the source has none and the
        sensor's table (:data:`SENSOR_BANDS`) does not name its bands.
    sensor : str, optional
        Sensor name when the source has none (e.g. ``"Sentinel-2A"``); otherwise ``"unknown"``.

    Returns
    -------
    xarray.Dataset
        Canonical cube (see module docstring): the reflectance variable plus every other variable
        on its ``(time, band, y, x)`` grid (masks, labels); nothing is rescaled. Variables with
        other dimensions are left out with a warning naming them.

    Raises
    ------
    MissingCRSError, MissingTimeError, UnknownBandError, CubeValidationError
        With the name of what is missing and the argument that supplies it.
    """
    ds = _read_source(source)
    da = _pick_variable(ds, variable)
    da = _restore_stored_values(da)
    da = _ensure_time(da, time)
    da = _ensure_band(da)
    missing = [d for d in ("y", "x") if d not in da.dims]
    if missing:
        raise CubeValidationError(
            f"The cube needs projected spatial dims 'y' and 'x'. Got dims {da.dims} instead. "
            "Rename them, e.g. da.rename({'lat': 'y', 'lon': 'x'}) for a projected grid.",
            missing="y/x",
        )
    da = da.transpose(*DIMS)
    out = da.to_dataset(name="reflectance")
    _keep_grid_variables(out, ds, picked=da.name)
    out = _ensure_crs(out, ds, crs)
    out = _ensure_sensor(out, sensor)
    out = _ensure_wavelengths(out, wavelength, bandwidth)
    out.attrs.update(ds.attrs if isinstance(ds, xr.Dataset) else {})
    validate_cube(out)
    return out


def _keep_grid_variables(out: xr.Dataset, ds: xr.Dataset, picked: Any) -> None:
    """Carry the source's other variables on the cube grid (masks, labels) into ``out``.

    A variable with a dimension outside ``(time, band, y, x)`` cannot travel with the cube: it is
    left out with a warning naming it, never silently.
    """
    dropped = []
    for name, var in ds.data_vars.items():
        if name in (picked, "reflectance"):
            continue
        if set(var.dims) <= set(DIMS):
            out[name] = var
        else:
            dropped.append(f"{name}{var.dims}")
    if dropped:
        warnings.warn(
            f"open_cube keeps the variables on the cube's {DIMS} grid; left out: "
            f"{', '.join(dropped)}. Keep them from the source Dataset if you need them.",
            UserWarning,
            stacklevel=3,
        )


def _read_source(source: str | os.PathLike | xr.Dataset | xr.DataArray) -> xr.Dataset:
    if isinstance(source, xr.DataArray):
        name = source.name or "reflectance"
        return source.to_dataset(name=name)
    if isinstance(source, xr.Dataset):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            "open_cube() takes a path, an xarray.Dataset or an xarray.DataArray. "
            f"Got {type(source).__name__} instead."
        )
    path = Path(source)
    if not path.exists():
        raise DataNotFoundError(f"No such file or folder: {path}. Check the path.")
    suffix = path.suffix.lower()
    if suffix in _GEOTIFF_SUFFIXES:
        da = rioxarray.open_rasterio(path, mask_and_scale=False)
        names = da.attrs.get("long_name")
        if isinstance(names, (tuple, list)) and len(names) == da.sizes["band"]:
            da = da.assign_coords(band=[str(n) for n in names])
        if "_FillValue" not in da.attrs and da.rio.nodata is not None:
            da.attrs["_FillValue"] = da.rio.nodata
        return da.to_dataset(name="reflectance")
    if suffix in _NETCDF_SUFFIXES:
        return xr.open_dataset(path, engine=NETCDF_ENGINE, mask_and_scale=False)
    if path.is_dir():
        with warnings.catch_warnings():  # a store without consolidated metadata is fine here
            warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated metadata")
            return xr.open_zarr(path, mask_and_scale=False)
    raise CubeValidationError(
        f"Unsupported file type {suffix!r} for {path}. Expected a GeoTIFF (.tif), NetCDF (.nc) "
        "or a Zarr store folder; or open it with xarray yourself and pass the Dataset."
    )


def _pick_variable(ds: xr.Dataset, variable: str | None) -> xr.DataArray:
    if variable is not None:
        if variable not in ds.data_vars:
            raise CubeValidationError(
                f"No variable {variable!r} in the cube. Got variables {list(ds.data_vars)} instead."
            )
        return ds[variable]
    if "reflectance" in ds.data_vars:
        return ds["reflectance"]
    candidates = [n for n, v in ds.data_vars.items() if v.ndim >= 3 and "band" in v.dims]
    if len(candidates) == 1:
        return ds[candidates[0]]
    raise CubeValidationError(
        "Cannot tell which variable holds the reflectance. "
        f"Got variables {list(ds.data_vars)}. Pass variable='NAME', or stack bands into one "
        "variable with ds.to_dataarray('band')."
    )


def _restore_stored_values(da: xr.DataArray) -> xr.DataArray:
    """Undo CF decoding (float + NaN) back to the stored dtype when the encoding says how."""
    enc = da.encoding
    stored = enc.get("dtype")
    if (
        np.issubdtype(da.dtype, np.floating)
        and stored is not None
        and np.issubdtype(np.dtype(stored), np.integer)
    ):
        scale = float(enc.get("scale_factor", 1.0))
        offset = float(enc.get("add_offset", 0.0))
        fill = enc.get("_FillValue")
        raw = np.round((da - offset) / scale)
        if fill is not None:
            raw = raw.fillna(fill)
        elif bool(da.isnull().any()):
            raise CubeValidationError(
                "The cube has NaN pixels but its encoding names no _FillValue to store them. "
                "Open it with mask_and_scale=False, or set da.encoding['_FillValue']."
            )
        attrs = dict(da.attrs, scale_factor=np.float32(scale), add_offset=np.float32(offset))
        if fill is not None:
            attrs["_FillValue"] = np.dtype(stored).type(fill)
        return raw.astype(stored).assign_attrs(attrs)
    attrs = dict(da.attrs)
    attrs.setdefault("scale_factor", np.float32(1.0))
    attrs.setdefault("add_offset", np.float32(0.0))
    if np.issubdtype(da.dtype, np.floating):
        attrs.setdefault("_FillValue", np.float32(np.nan))
    return da.assign_attrs(attrs)


def _dates(time: Any) -> np.ndarray:
    """``time=`` as datetime64[ns] dates, one or more; a value that is not a date is an error."""
    try:
        return np.atleast_1d(np.asarray(time, dtype="datetime64[ns]"))
    except ValueError as exc:
        raise MissingTimeError(
            f"time= must be dates such as '2023-06-01' (ISO 8601). Got {time!r} instead: {exc}.",
            missing="time",
        ) from None


def _ensure_time(da: xr.DataArray, time: Any) -> xr.DataArray:
    if "time" in da.dims:
        if time is not None:
            dates = _dates(time)
            if dates.size != da.sizes["time"]:
                raise MissingTimeError(
                    f"time= gives {dates.size} date(s) for a cube of {da.sizes['time']} images. "
                    "Give one date per image, in the file's order.",
                    missing="time",
                )
            da = da.assign_coords(time=dates)
        if not np.issubdtype(da["time"].dtype, np.datetime64):
            raise MissingTimeError(
                f"The 'time' coordinate must hold dates (datetime64). Got dtype {da['time'].dtype} "
                "instead. Pass time=[...dates...] or decode times with xr.decode_cf.",
                missing="time",
            )
        return da
    if time is None:
        raise MissingTimeError(
            "The cube has no 'time' dimension, so its observation date is unknown (the prior is "
            "conditioned on it). Pass time='2023-06-01' (or one date per image).",
            missing="time",
        )
    times = _dates(time)
    if times.size != 1:  # one image: several dates would copy it silently
        raise MissingTimeError(
            f"The cube holds one image (no 'time' dimension), so it takes one date. Got "
            f"{times.size} dates in time= instead.",
            missing="time",
        )
    return da.expand_dims(time=times)


def _ensure_band(da: xr.DataArray) -> xr.DataArray:
    if "band" not in da.dims:
        raise CubeValidationError(
            f"The cube needs a 'band' dimension. Got dims {da.dims} instead. "
            "Rename the spectral dimension to 'band' (da.rename(...)) or stack band variables "
            "with ds.to_dataarray('band').",
            missing="band",
        )
    return da.assign_coords(band=[str(b) for b in da["band"].values])


def _ensure_crs(out: xr.Dataset, src: xr.Dataset, crs: Any) -> xr.Dataset:
    if crs is None:
        found = geo.cube_crs(src)
    else:
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(crs)
        except CRSError as exc:
            raise CubeValidationError(
                f"crs={crs!r} is not a coordinate reference system pyproj knows ({exc}). Give an "
                "EPSG code such as 'EPSG:32631', a PROJ string or WKT.",
                missing="crs",
            ) from None
        try:
            existing = geo.cube_crs(src)
        except MissingCRSError:
            existing = None
        if existing is not None and existing != CRS.from_user_input(crs):
            raise CubeValidationError(
                f"The cube already has a CRS ({existing.to_string()}); crs={crs!r} would relabel "
                "its coordinates, not reproject them. Leave crs= out, or reproject first with "
                "ds.rio.reproject(...).",
                missing="crs",
            )
        found = crs
    out = out.drop_vars("spatial_ref", errors="ignore").rio.write_crs(found)
    out["reflectance"].attrs["grid_mapping"] = "spatial_ref"
    return out


def _ensure_sensor(out: xr.Dataset, sensor: str | None) -> xr.Dataset:
    if "sensor" in out.coords and sensor is None:
        return out
    name = sensor or str(out.attrs.get("sensor", "unknown"))
    return out.assign_coords(sensor=("time", [name] * out.sizes["time"]))


def _ensure_wavelengths(
    out: xr.Dataset, wavelength: Sequence[float] | None, bandwidth: Sequence[float] | None
) -> xr.Dataset:
    bands = [str(b) for b in out["band"].values]
    n = len(bands)
    if wavelength is not None:
        wl = np.asarray(wavelength, dtype=np.float32)
        bw = np.asarray(bandwidth if bandwidth is not None else np.full(n, np.nan), dtype=np.float32)
        if wl.shape != (n,) or bw.shape != (n,):
            raise UnknownBandError(
                f"wavelength and bandwidth need one value per band ({n} bands: {bands}). "
                f"Got {wl.shape[0] if wl.ndim else 0} wavelengths and "
                f"{bw.shape[0] if bw.ndim else 0} bandwidths instead.",
                bands=bands,
            )
        return out.assign_coords(wavelength=("band", wl), bandwidth=("band", bw))
    if "wavelength" in out.coords:
        if "bandwidth" not in out.coords:
            out = out.assign_coords(bandwidth=("band", np.full(n, np.nan, np.float32)))
        return out
    sensor = str(out["sensor"].values[0])
    table = sensor_table(sensor)
    unknown = bands if table is None else [b for b in bands if b not in table]
    if unknown:
        raise UnknownBandError(
            f"Unknown centre wavelength for bands {unknown} (sensor {sensor!r}). Pass "
            "wavelength=[...] and bandwidth=[...] in nm, one per band, or sensor= one of "
            f"{', '.join(SENSOR_BANDS)} with that sensor's band names (e.g. B04).",
            bands=unknown,
        )
    wl = np.array([table[b][0] for b in bands], np.float32)
    bw = np.array([table[b][1] for b in bands], np.float32)
    return out.assign_coords(wavelength=("band", wl), bandwidth=("band", bw))


def validate_cube(ds: xr.Dataset) -> None:
    """Check that ``ds`` is a canonical cube; raise a typed error naming what is wrong and the fix.

    Raises
    ------
    CubeValidationError, MissingCRSError, MissingTimeError, UnknownBandError
    """
    if not isinstance(ds, xr.Dataset) or "reflectance" not in ds.data_vars:
        found = list(ds.data_vars) if isinstance(ds, xr.Dataset) else type(ds).__name__
        raise CubeValidationError(
            f"Expected a Dataset with a 'reflectance' variable. Got {found} instead. "
            "Use xr_d2ar.datasets.open_cube(..., variable='NAME') to bring a cube into "
            "canonical form.",
            missing="reflectance",
        )
    da = ds["reflectance"]
    if "time" not in da.dims:  # one date (ds.isel(time=0)) or none at all
        raise MissingTimeError(
            f"reflectance has no 'time' dimension (dims {tuple(da.dims)}). Give a single date "
            "one with ds.expand_dims('time') (a scalar 'time' coordinate becomes its value), "
            "or pass time=... to open_cube.",
            missing="time",
        )
    if tuple(da.dims) != DIMS:
        raise CubeValidationError(
            f"reflectance must have dims {DIMS}. Got {tuple(da.dims)} instead. "
            f"Use ds.transpose{DIMS} or xr_d2ar.datasets.open_cube(ds).",
            missing="dims",
        )
    if not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise MissingTimeError(
            f"'time' must be datetime64. Got {ds['time'].dtype} instead. Pass time=... to open_cube.",
            missing="time",
        )
    nat = np.flatnonzero(np.isnat(ds["time"].values))
    if nat.size:  # a date the prior is conditioned on: NaT would decode to zeros
        raise MissingTimeError(
            f"'time' has no date (NaT) at position(s) {nat[:10].tolist()} of {ds.sizes['time']}. "
            "Drop those dates (ds.isel(time=...)) or give them their acquisition dates.",
            missing="time",
        )
    for name in ("wavelength", "bandwidth"):
        if name not in ds.coords:
            raise UnknownBandError(
                f"The cube has no per-band '{name}' coordinate (nm). Pass wavelength=[...], "
                "bandwidth=[...] to open_cube.",
                bands=[str(b) for b in ds["band"].values],
            )
    wl = np.asarray(ds["wavelength"].values, dtype=np.float64)
    if not np.all(np.isfinite(wl)) or np.any(wl <= 0):
        bad = [str(b) for b, w in zip(ds["band"].values, wl) if not (np.isfinite(w) and w > 0)]
        raise UnknownBandError(
            f"Bands {bad} have no valid centre wavelength. Pass wavelength=[...] (nm) to open_cube.",
            bands=bad,
        )
    geo.cube_crs(ds)  # raises MissingCRSError naming the fix
    if "sensor" not in ds.coords or ds["sensor"].dims != ("time",):
        raise CubeValidationError(
            "The cube needs a per-time 'sensor' coordinate. Pass sensor='...' to open_cube.",
            missing="sensor",
        )


# --------------------------------------------------------------------------- splits


def split_time(ds: xr.Dataset, *, holdout: float = 0.2) -> tuple[xr.Dataset, xr.Dataset]:
    """Split a cube by time: the last ``holdout`` fraction of dates is held out.

    Parameters
    ----------
    ds : xarray.Dataset
        Canonical cube.
    holdout : float
        Fraction of dates (0 < holdout < 1) to hold out, rounded, at least one date when the cube
        has two or more dates.

    Returns
    -------
    (train, held_out) : tuple of xarray.Dataset
        ``held_out`` is empty (zero dates) when the cube has a single date.
    """
    if not 0.0 < holdout < 1.0:
        raise ValueError(f"holdout must be a fraction in (0, 1). Got {holdout!r} instead.")
    n = ds.sizes["time"]
    order = np.argsort(ds["time"].values, kind="stable")
    n_hold = 0 if n < 2 else builtins.max(1, round(n * holdout))
    train_idx = np.sort(order[: n - n_hold])
    hold_idx = np.sort(order[n - n_hold :])
    return ds.isel(time=train_idx), ds.isel(time=hold_idx)
