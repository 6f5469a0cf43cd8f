"""xarray engine ``"d2ar"``: open a token store as the original-looking cube, decoding lazily.

``xr.open_dataset(store, engine="d2ar")`` (or :func:`open_dataset`) reads metadata, masks and
coordinates; the compressed variable is a lazy :class:`D2arArrayWrapper` that decodes only the
tiles an indexing operation touches. ``chunks={}`` gives tile-aligned Dask chunks (those the store
was written with).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from xr_d2ar import store
from xr_d2ar.errors import CubeValidationError
from xr_d2ar.parallel import CodingSpec, decode_tiles, ref_for_store, tile_index

__all__ = ["D2arArrayWrapper", "D2arBackendEntrypoint", "open_dataset"]


class D2arArrayWrapper(BackendArray):
    """Lazy ``(time, band, y, x)`` values of a token store; decodes the touched tiles only.

    Holds only a path and small metadata (picklable, no open handles); the Zarr arrays are opened
    per access and the prior is loaded once per process by sha256.

    Parameters
    ----------
    path : str
        Local path or URL of the token store.
    spec : CodingSpec
        Decode settings (model reference, tile size, dtype, scale/offset/fill, seed, steps).
    shape : tuple of int
        ``(time, band, y, x)``.
    time, sensor : numpy.ndarray
        Per-time conditioning ``(time,)``.
    """

    def __init__(
        self,
        path: str,
        spec: CodingSpec,
        shape: tuple[int, ...],
        time: np.ndarray,
        sensor: np.ndarray,
    ) -> None:
        self.path = path
        self.spec = spec
        self.shape = tuple(shape)
        self.dtype = np.dtype(spec.dtype)
        self.time = time
        self.sensor = sensor

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._getitem
        )

    def _getitem(self, key: tuple[Any, ...]) -> np.ndarray:
        import zarr

        index = [np.arange(n)[k] for n, k in zip(self.shape, key)]
        scalar = [np.ndim(i) == 0 for i in index]
        it, ib, iy, ix = (np.atleast_1d(i) for i in index)
        out_shape = (it.size, ib.size, iy.size, ix.size)
        if 0 in out_shape:
            return np.empty(tuple(s for s, drop in zip(out_shape, scalar) if not drop), self.dtype)
        tile = self.spec.tile
        rows, cols = np.unique(iy // tile), np.unique(ix // tile)
        self.spec.model.load()  # first, so the token codec finds this prior (with its path hint)
        group = zarr.open_group(self.path, mode="r")
        tokens = group[store.TOKENS].oindex[it, rows, cols, :]
        lat = group[store.TILE_LAT].oindex[rows, cols]
        lon = group[store.TILE_LON].oindex[rows, cols]
        tiles = decode_tiles(
            tokens,
            lat,
            lon,
            self.time[it],
            self.sensor[it],
            tile_index(it, rows, cols, self.spec),
            spec=self.spec,
        )  # (nt, B, R, C, T, T)
        r = np.searchsorted(rows, iy // tile)[:, None]
        c = np.searchsorted(cols, ix // tile)[None, :]
        out = tiles[:, ib][:, :, r, c, (iy % tile)[:, None], (ix % tile)[None, :]]
        self.spec.restore_nodata(out, group[store.NODATA].oindex[it, ib, iy, ix])
        return out.reshape(tuple(s for s, drop in zip(out_shape, scalar) if not drop))


def open_dataset(
    path: str | os.PathLike,
    *,
    chunks: dict[str, int] | None = None,
    model: Any = None,
    drop_variables: Iterable[str] | None = None,
    decode_engine: str | None = None,
) -> xr.Dataset:
    """Open a token store as the original-looking cube (nothing is decoded until indexed).

    Parameters
    ----------
    path : str or PathLike
        Token store written by ``tokens.d2ar.to_zarr`` or ``d2ar compress`` (Zarr v2 or v3).
    chunks : dict, optional
        ``{}`` for the store's tile-aligned Dask chunks; None for lazy NumPy-backed indexing.
    model : D2arModel or path, optional
        Prior to decode with; by default the one the store names, found by sha256.
    drop_variables : iterable of str, optional
        Variables not to open.
    decode_engine : {"auto", "torch", "cext"}, optional
        What decodes the tiles (default: the ``decode_engine`` option, ``"auto"``: cext on
        CPUs where it is the faster, torch elsewhere). ``"cext"`` runs our CPU kernels: the
        same bits on every CPU, batch and thread count.

    Returns
    -------
    xarray.Dataset
        Same variables, dims, coords, attrs and dtypes as the compressed cube.

    Raises
    ------
    ModelMismatchError
        If the store's prior is not available here or ``model`` has another sha256.

    Examples
    --------
    >>> import xr_d2ar  # doctest: +SKIP
    >>> rec = xr_d2ar.open_dataset("cube.d2ar.zarr", chunks={})  # doctest: +SKIP
    """
    return xr.open_dataset(
        path,
        engine=D2arBackendEntrypoint,
        chunks=chunks,
        model=model,
        drop_variables=drop_variables,
        decode_engine=decode_engine,
    )


def _open(
    path: str, model: Any, drop_variables: Iterable[str] | None, decode_engine: str | None
) -> xr.Dataset:
    from zarr.errors import GroupNotFoundError

    try:
        tokens = xr.open_zarr(path, chunks=None, consolidated=False, mask_and_scale=False)
    except GroupNotFoundError:
        raise CubeValidationError(
            f"{path} is not a Zarr store, so not a d2ar token store. Open other files without "
            "engine='d2ar' (xr_d2ar.datasets.open_cube reads NetCDF, GeoTIFF and Zarr cubes).",
            missing="zarr.json",
        ) from None
    layout = store.TokenLayout.from_attrs(tokens.attrs)
    spec = CodingSpec.for_layout(
        layout,
        ref_for_store(layout, model),
        tokens["wavelength"].values,
        tokens["bandwidth"].values,
        decode_engine,
    )
    grid = layout.grid
    wrapper = D2arArrayWrapper(
        path,
        spec,
        layout.shape,
        tokens["time"].values,
        np.asarray(tokens["sensor"].values).astype(object),
    )
    values = indexing.LazilyIndexedArray(wrapper)
    ds = store.restore(tokens, values)
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=layout.variable)
    t_chunks = tokens[store.TOKENS].encoding.get("preferred_chunks", {})
    var = ds[layout.variable]
    var.encoding["preferred_chunks"] = {
        "time": t_chunks.get("time", layout.shape[0]),
        "band": layout.shape[1],
        "y": t_chunks.get("tile_y", grid.n_ty) * layout.tile_size,
        "x": t_chunks.get("tile_x", grid.n_tx) * layout.tile_size,
    }
    if drop_variables:
        ds = ds.drop_vars(list(drop_variables), errors="ignore")
    ds.set_close(tokens.close)
    return ds


class D2arBackendEntrypoint(BackendEntrypoint):
    """xarray engine for xr_d2ar token stores (Zarr v2/v3 written by ``d2ar``)."""

    description = "Open xr_d2ar token stores (generative compression of EO cubes) lazily"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "model", "decode_engine")

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        drop_variables: Iterable[str] | None = None,
        model: Any = None,
        decode_engine: str | None = None,
    ) -> xr.Dataset:
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            raise TypeError(
                "engine='d2ar' opens a token store by path or URL. Got "
                f"{type(filename_or_obj).__name__} instead."
            )
        return _open(os.fspath(filename_or_obj), model, drop_variables, decode_engine)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """True for a local Zarr folder whose root attributes carry ``d2ar_format_version``."""
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        path = Path(filename_or_obj)
        if "://" in os.fspath(filename_or_obj) or not path.is_dir():
            return False
        for meta, key in (("zarr.json", "attributes"), (".zattrs", None)):
            file = path / meta
            if file.is_file():
                try:
                    attrs = json.loads(file.read_text())
                except (OSError, ValueError):
                    return False
                attrs = attrs.get(key, {}) if key else attrs
                return "d2ar_format_version" in attrs
        return False
