"""Geographic helpers: longitude/latitude of projected pixel positions through pyproj."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import xarray as xr
from pyproj import CRS, Transformer

from xr_d2ar.errors import CubeValidationError, MissingCRSError

__all__ = ["cube_crs", "lonlat"]


def cube_crs(ds: xr.Dataset | xr.DataArray) -> CRS:
    """The cube's CRS (from its ``spatial_ref`` grid mapping), as a :class:`pyproj.CRS`.

    Raises
    ------
    MissingCRSError
        If the cube has no grid mapping, or one that cannot be parsed (the parser's message is
        included).
    """
    import rioxarray  # noqa: F401  (registers .rio)

    problem = "has no coordinate reference system"
    try:
        crs = ds.rio.crs
    except Exception as exc:  # noqa: BLE001 (rioxarray/rasterio/pyproj: assorted types; named below)
        glob = ds.attrs.get("crs")
        if glob is not None and str(glob) in str(exc):  # rioxarray fell back on a global 'crs'
            problem = (f"has no grid mapping, and its global 'crs' attribute ({glob!r}) is not a "
                       "coordinate reference system")
        else:
            problem = f"has a grid mapping that cannot be read ({exc})"
        crs = None
    if crs is None:
        raise MissingCRSError(
            f"The cube {problem}, so pixel locations (which condition the prior) are unknown. "
            "Pass crs='EPSG:...' (your grid's CRS, e.g. 'EPSG:326NN' for UTM zone NN north, "
            "'EPSG:327NN' south) to xr_d2ar.datasets.open_cube, or call "
            "ds.rio.write_crs('EPSG:...') first.",
            missing="crs",
        )
    return CRS.from_user_input(crs.to_wkt())


@lru_cache(maxsize=32)
def _to_lonlat(wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(wkt), "EPSG:4326", always_xy=True)


def lonlat(ds: xr.Dataset | xr.DataArray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees, WGS 84) of projected positions in the cube's CRS.

    Parameters
    ----------
    ds : xarray.Dataset or DataArray
        Cube carrying the CRS.
    y, x : array_like
        Projected coordinates (metres), broadcast against each other.

    Returns
    -------
    (lon, lat) : tuple of numpy.ndarray
        float64, shape of ``broadcast(y, x)``.

    Examples
    --------
    >>> import xr_d2ar  # doctest: +SKIP
    >>> ds = xr_d2ar.datasets.open("worldcereal_flanders_a_s2")  # doctest: +SKIP
    >>> lon, lat = xr_d2ar.geo.lonlat(ds, ds.y.values[32], ds.x.values[32])  # doctest: +SKIP
    """
    yy, xx = np.broadcast_arrays(np.asarray(y, np.float64), np.asarray(x, np.float64))
    crs = cube_crs(ds)
    lon, lat = _to_lonlat(crs.to_wkt()).transform(xx, yy)
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    if lon.size and not (np.all(np.isfinite(lat)) and np.all(np.abs(lat) <= 90)):
        raise CubeValidationError(
            f"The cube's coordinates (x {np.nanmin(xx):.6g} .. {np.nanmax(xx):.6g}, y "
            f"{np.nanmin(yy):.6g} .. {np.nanmax(yy):.6g}) are not positions in its CRS "
            f"{crs.to_string()}: they fall off the Earth there. Give the CRS the coordinates are "
            "in (crs=, --crs), e.g. a UTM zone such as 'EPSG:32631' for metres.",
            missing="crs",
        )
    return lon, lat
