"""xr_d2ar: generative compression of Earth-observation data cubes for xarray, Dask and Zarr."""

from __future__ import annotations

from xr_d2ar import datasets, geo
from xr_d2ar._options import get_options, set_options
from xr_d2ar.errors import D2arError
from xr_d2ar.tiling import TileGrid

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "D2arError",
    "TileGrid",
    "datasets",
    "geo",
    "get_options",
    "set_options",
]
