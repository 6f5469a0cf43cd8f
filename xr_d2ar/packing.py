"""Stored <-> physical values of a packed array (CF ``scale_factor``/``add_offset``/``_FillValue``).

numpy only, so that every layer can use it: the xarray side (:func:`xr_d2ar.datasets.to_reflectance`),
the codec (:meth:`xr_d2ar.parallel.CodingSpec.to_physical`) and the training reader, also on GPU
nodes without the geo/Zarr stack.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["stored_to_physical"]


def stored_to_physical(
    stored: np.ndarray, scale_factor: float, add_offset: float, fill_value: Any = None
) -> np.ndarray:
    """Unpack stored values: ``stored * scale_factor + add_offset`` in float32, NaN at the fill value.

    The one definition of the unpacking every layer uses (:func:`to_reflectance`, the codec's
    :meth:`xr_d2ar.parallel.CodingSpec.to_physical`, the training reader).

    Parameters
    ----------
    stored : numpy.ndarray
        Stored values, any shape and dtype.
    scale_factor, add_offset : float
        Physical = stored * scale_factor + add_offset; both are rounded to float32 first.
    fill_value : optional
        Stored nodata value, compared as given (its own dtype). ``None`` or NaN masks nothing
        (NaN stays NaN); +-inf are kept.

    Returns
    -------
    numpy.ndarray
        float32, same shape; a new array (``stored`` is not modified).
    """
    stored = np.asarray(stored)
    phys = stored.astype(np.float32)
    phys *= np.float32(scale_factor)
    phys += np.float32(add_offset)
    if fill_value is not None and not np.isnan(fill_value):
        phys[stored == fill_value] = np.nan
    return phys
