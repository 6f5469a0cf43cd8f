"""xr_d2ar: generative compression of Earth-observation data cubes for xarray, Dask and Zarr.

Importing the package registers the ``.d2ar`` accessor on :class:`xarray.Dataset` and
:class:`xarray.DataArray`. The torch-based parts (:func:`load_model`, :mod:`xr_d2ar.model`,
:mod:`xr_d2ar.train`, :mod:`xr_d2ar.runtime`) are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xr_d2ar import accessor as _accessor  # noqa: F401  (registers the .d2ar accessor)
from xr_d2ar import (
    baselines,
    bench,
    codecs,
    datasets,
    errors,
    geo,
    kernels,
    metrics,
    parallel,
    store,
)
from xr_d2ar._options import get_options, set_options
from xr_d2ar.backend import open_dataset
from xr_d2ar.errors import D2arError
from xr_d2ar.tiling import TileGrid

if TYPE_CHECKING:
    from xr_d2ar import model, runtime, train
    from xr_d2ar.model import D2arModel, load_model

__version__ = "0.1.0"

__all__ = [
    "D2arError",
    "D2arModel",
    "TileGrid",
    "__version__",
    "baselines",
    "bench",
    "codecs",
    "datasets",
    "errors",
    "geo",
    "get_options",
    "kernels",
    "load_model",
    "metrics",
    "model",
    "open_dataset",
    "parallel",
    "runtime",
    "set_options",
    "store",
    "train",
]

#: attribute -> (module, name or None for the module itself), imported on first access (torch).
_LAZY = {
    "load_model": ("xr_d2ar.model", "load_model"),
    "D2arModel": ("xr_d2ar.model", "D2arModel"),
    "model": ("xr_d2ar.model", None),
    "train": ("xr_d2ar.train", None),
    "runtime": ("xr_d2ar.runtime", None),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'xr_d2ar' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
