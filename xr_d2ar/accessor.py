"""The ``.d2ar`` accessor on :class:`xarray.Dataset` and :class:`xarray.DataArray`.

``cube.d2ar.compress(...)`` turns a canonical cube into a lazy token Dataset;
``tokens.d2ar.reconstruct()`` gives the original-looking cube back (lazily);
``tokens.d2ar.to_zarr(store)`` writes it with the entropy codec; ``tokens.d2ar.encoding()`` says
how.
"""

from __future__ import annotations

import itertools
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
import xarray as xr

from xr_d2ar import parallel, store
from xr_d2ar.codecs import lookup, payload
from xr_d2ar.datasets import validate_cube
from xr_d2ar.errors import ChunkAlignmentError
from xr_d2ar.parallel import CodingSpec, ModelLike, load_prior, ref_for_store
from xr_d2ar.tiling import TileGrid

if TYPE_CHECKING:
    from distributed import Client

    from xr_d2ar.model.api import D2arModel

__all__ = ["D2arDataArrayAccessor", "D2arDatasetAccessor"]

DEFAULT_RATIO = 1000.0
#: Entropy-coded size / ideal code length under the token model (ANS overhead, measured ~0.2 %).
_CODER_MARGIN = 1.01
_BLOCK_BYTES = 32 << 20  # float32 bytes per default Dask block
_BLOCK_PIXELS = 512  # default y/x chunk, rounded down to whole tiles


def _n_tokens(
    model: D2arModel, ratio: float | None, tokens: int | None, values: xr.DataArray, grid: TileGrid
) -> int:
    """Tokens per tile for ``ratio`` of the cube's own bytes (edge padding is not data)."""
    if ratio is not None and tokens is not None:
        raise ValueError(
            f"Pass ratio= or tokens=, not both. Got ratio={ratio!r}, tokens={tokens!r}."
        )
    if tokens is None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.number)) or not (
            np.isfinite(ratio) and ratio > 0
        ):
            raise ValueError(f"ratio must be a positive number, e.g. 1000. Got {ratio!r} instead.")
        padded = grid.n_ty * grid.n_tx * grid.tile**2 / (grid.ny * grid.nx)
        k = model.tokens_for_ratio(
            float(ratio) * padded, n_bands=values.sizes["band"], itemsize=values.dtype.itemsize
        )
        if k == model.n_tokens:
            original = values.sizes["band"] * grid.tile**2 * values.dtype.itemsize / padded
            lowest = original / (float(np.sum(model.token_bits)) / 8)
            if ratio < 0.9 * lowest:
                warnings.warn(
                    f"ratio={ratio:g} asks for more than prior {model.name!r} can store: all its "
                    f"{model.n_tokens} tokens per tile come to about {lowest:.0f}x, so the store "
                    f"will be about {lowest:.0f}x, not {ratio:g}x, and no closer to the source. "
                    "For near-lossless storage use a classical codec (d2ar bench compares them).",
                    UserWarning,
                    stacklevel=3,
                )
        if k == 0:
            warnings.warn(
                f"ratio={ratio:g} leaves no room for a single token per tile: the cube is stored "
                "as its dates and places only and decodes to the prior's climatology. Pass a "
                "smaller ratio (or tokens=1) to keep per-tile information.",
                UserWarning,
                stacklevel=3,
            )
        return k
    if (
        isinstance(tokens, bool)
        or not isinstance(tokens, (int, np.integer))
        or not 0 <= tokens <= model.n_tokens
    ):
        raise ValueError(f"tokens must be an int in [0, {model.n_tokens}]. Got {tokens!r} instead.")
    return int(tokens)


def _measured_prefix(
    prior: D2arModel,
    data: da.Array,
    lat: np.ndarray,
    lon: np.ndarray,
    time: np.ndarray,
    sensor: np.ndarray,
    spec: CodingSpec,
    ratio: float,
    cluster: dict[str, Any],
) -> tuple[da.Array, CodingSpec]:
    """All K tokens of the cube, computed, cut to the longest prefix that meets ``ratio``.

    ``data`` is the tile-aligned cube ``(time, band, y, x)``; ``lat``/``lon`` its tile centres
    ``(n_ty, n_tx)`` in degrees; ``time``/``sensor`` ``(time,)``; ``cluster`` the ``scheduler``/
    ``resources`` of :func:`xr_d2ar.parallel.compute`. Returns tokens ``(time, n_ty, n_tx, k)`` and
    the spec with ``n_tokens = k``.

    The size of a prefix of k tokens is estimated as its code length under the prior's token model
    (what the entropy coder spends, within a fraction of a percent) plus one payload header per
    chunk; the chosen prefix is then entropy-coded chunk by chunk, as the store will write it, and
    shortened while the coded bytes exceed the budget, or lengthened while one more token fits.
    """
    from xr_d2ar.model.token_model import cross_entropy_bits

    full = parallel.encode(data, lat, lon, time, sensor, spec=replace(spec, n_tokens=prior.n_tokens))
    (tokens,) = parallel.compute(full, **cluster)
    flat = tokens.reshape(-1, prior.n_tokens)
    bits = cross_entropy_bits(prior.token_model, flat) * len(flat)  # (K,) total per position
    n_chunks = int(np.prod([len(c) for c in full.chunks[:3]]))
    cost = np.cumsum(bits) / 8 * _CODER_MARGIN + n_chunks * payload.header_size(4)
    budget = data.dtype.itemsize * float(np.prod(data.shape)) / ratio
    k = int(np.searchsorted(cost, budget, side="right")) if len(flat) else 0
    coded = lambda k: _coded_bytes(prior, tokens[..., :k], full.chunks[:3])
    if k > 0 and coded(k) > budget:  # the estimate was too optimistic: shorten
        while k > 0 and coded(k) > budget:
            k -= 1
    else:  # the estimate (with its margin) may leave room: lengthen while the bytes still fit
        while k < prior.n_tokens and len(flat) and coded(k + 1) <= budget:
            k += 1
    if k == 0:
        warnings.warn(
            f"ratio={ratio:g} leaves no room for a single token per tile on this cube: it is "
            "stored as its dates and places only and decodes to the prior's climatology.",
            UserWarning,
            stacklevel=4,
        )
    chunks = (*full.chunks[:3], (k,))
    return da.from_array(np.ascontiguousarray(tokens[..., :k]), chunks=chunks), replace(
        spec, n_tokens=k
    )


def _coded_bytes(prior: D2arModel, tokens: np.ndarray, chunks: tuple[tuple[int, ...], ...]) -> int:
    """Bytes of the token payloads of ``tokens (time, n_ty, n_tx, k)`` stored in Dask ``chunks`` of
    the first three dims: what the store's token codec writes, edge chunks padded by Zarr to the
    regular chunk shape with token 0."""
    edges = [np.cumsum((0, *c)) for c in chunks]
    regular = tuple(c[0] for c in chunks)
    total = 0
    for idx in itertools.product(*(range(len(c)) for c in chunks)):
        sl = tuple(slice(e[i], e[i + 1]) for e, i in zip(edges, idx))
        block = tokens[sl]
        padded = np.zeros((*regular, block.shape[-1]), block.dtype)
        padded[tuple(slice(0, n) for n in block.shape[:-1])] = block
        total += len(payload.encode(padded, prior.token_model, prior.sha256))
    return total


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    """Raise ValueError unless ``value`` is an int >= ``minimum`` (bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}. Got {value!r} instead.")


def _nodata(data: da.Array, fill: float | None) -> da.Array:
    """Nodata codes (uint8): 1 where the stored value is the fill value, 2 where it is NaN, else 0."""
    codes = da.zeros(data.shape, np.uint8, chunks=data.chunks)
    if fill is not None and not np.isnan(fill):
        codes = da.where(data == fill, np.uint8(store.NODATA_FILL), codes)
    if np.issubdtype(data.dtype, np.floating):
        codes = da.where(da.isnan(data), np.uint8(store.NODATA_NAN), codes)
    return codes.astype(np.uint8)


def _aligned(ds: xr.Dataset, chunks: dict[str, tuple[int, ...]]) -> xr.Dataset:
    """Variables on the pixel grid chunked like the cube (for Zarr); small ones loaded."""
    out = ds.copy()
    for name, var in ds.variables.items():
        if name == "reflectance" or name in ds.indexes:
            continue
        if {"y", "x"} & set(var.dims):
            out[name] = var.chunk({d: chunks[d] for d in var.dims if d in chunks})
        else:
            out[name] = var.load()
    return out


def _default_chunks(array: xr.DataArray, tile: int) -> dict[str, int]:
    step = max(1, _BLOCK_PIXELS // tile) * tile
    cy, cx = min(array.sizes["y"], step), min(array.sizes["x"], step)
    per_time = array.sizes["band"] * cy * cx * 4
    return {"time": max(1, _BLOCK_BYTES // per_time), "band": -1, "y": cy, "x": cx}


def _tile_aligned(array: xr.DataArray, tile: int, chunks: dict[str, int] | None) -> xr.DataArray:
    """The cube as Dask: bands in one chunk, y/x chunks checked (whole tiles but the last)."""
    if chunks is not None:
        array = array.chunk(chunks)
    elif array.chunks is None:
        array = array.chunk(_default_chunks(array, tile))
    if len(array.chunks[array.dims.index("band")]) != 1:  # every tile needs all bands: cheap merge
        array = array.chunk(band=-1)
    sizes = dict(zip(array.dims, array.chunks))
    for dim in ("y", "x"):
        bad = [c for c in sizes[dim][:-1] if c % tile]
        if bad:
            good = max(tile, sizes[dim][0] // tile * tile)
            raise ChunkAlignmentError(
                f"Chunks along {dim!r} must be whole tiles of {tile} px (all but the last). Got "
                f"chunks {sizes[dim]} instead. Rechunk with cube.chunk({dim}={good}).",
                fix={dim: good},
            )
    for dim in ("time", "y", "x"):  # Zarr chunks are regular: one size, a smaller last chunk
        c = sizes[dim]
        if len(set(c[:-1])) > 1 or c[-1] > c[0]:
            raise ChunkAlignmentError(
                f"Chunks along {dim!r} must all have one size (the last may be smaller) to be "
                f"stored in Zarr. Got chunks {c} instead. Rechunk with cube.chunk({dim}={c[0]}).",
                fix={dim: c[0]},
            )
    return array


class _D2arBase:
    """What a Dataset and a DataArray share: compress."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def _cube(self) -> tuple[xr.Dataset, str, str | None]:
        """Canonical Dataset, kind, DataArray name."""
        raise NotImplementedError

    def compress(
        self,
        model: ModelLike = None,
        *,
        ratio: float | None = None,
        tokens: int | None = None,
        seed: int = 0,
        steps: int | None = None,
        chunks: dict[str, int] | None = None,
        exact_ratio: bool = False,
        scheduler: Any = None,
        resources: dict[str, float] | None = None,
    ) -> xr.Dataset:
        """Compress the cube into a lazy token Dataset.

        Parameters
        ----------
        model : D2arModel, path or None
            The prior (``None``: the shipped default).
        ratio : float, optional
            Target ratio of source bytes to token bytes (default 1000); picks the tokens per tile
            from the prior's token model (``D2arModel.tokens_for_ratio``), counting the cube's own
            pixels only (tiles padded at the far edges get no extra budget). It is a target: the
            expected bits per token were measured on held-out dates of the prior's training
            places (the demo cube: 1038x for 1000x), and tokens of other places can cost more or
            less. ``to_zarr`` returns the achieved
            ratio, measured on disk; ``d2ar info`` prints it. See ``exact_ratio``.
        tokens : int, optional
            Tokens per tile instead of ``ratio`` (0 = the prior's climatology only).
        seed : int
            Decode noise seed, recorded in the store.
        steps : int, optional
            Decode sampler steps, recorded in the store (default: the prior's ``decode.steps``).
        chunks : dict, optional
            Dask chunks to use (``time``, ``y``, ``x``; whole tiles along y/x). Band chunks are
            merged (every tile needs all bands).
        exact_ratio : bool
            With ``ratio``: encode all the prior's tokens now, measure what each prefix costs on
            *this* cube under the token model (with the chunk headers), and keep the most tokens
            per tile that still meet ``ratio``. The tokens are then computed (in memory), not lazy.
        scheduler, resources : optional
            Where the ``exact_ratio`` pass computes, as for :func:`xr_d2ar.parallel.compute` (a
            scheduler address or client, worker resources); default: the active client, else
            the local scheduler. Only with ``exact_ratio`` (the tokens are lazy otherwise: give
            them to ``to_zarr``).

        Returns
        -------
        xarray.Dataset
            Token Dataset (see :mod:`xr_d2ar.store`); the tokens are a lazy Dask array.

        Raises
        ------
        MissingCRSError, MissingTimeError, UnknownBandError, ChunkAlignmentError
            With the fix in the message.
        """
        if ratio is None and tokens is None:
            ratio = DEFAULT_RATIO
        if not exact_ratio and (scheduler is not None or resources):
            raise ValueError(
                "scheduler=/resources= set where compress(exact_ratio=True) computes; without "
                "exact_ratio the tokens are lazy: pass them to .d2ar.to_zarr(...) instead."
            )
        _check_int("seed", seed, minimum=0)
        if steps is not None:
            _check_int("steps", steps, minimum=1)
        ds, kind, name = self._cube()
        validate_cube(ds)
        prior, ref = load_prior(model)
        if steps is None:
            steps = int(prior.config.get("decode", {}).get("steps", 8))
        prior.check_bands(ds["wavelength"].values)
        unknown = prior.unknown_sensors(ds["sensor"].values)
        if unknown:
            warnings.warn(
                f"Prior {prior.name!r} was not trained on sensor(s) {unknown}: they are coded as "
                "'unknown', with its generic normalisation (reflectance in [0, 1]), so quality may "
                f"suffer. Known sensors: {[s for s in prior.config['sensors'] if s != 'unknown']}. "
                "Set the cube's 'sensor' coordinate to one of them if it is the same instrument.",
                UserWarning,
                stacklevel=2,
            )
        _warn_if_decoded(ds["reflectance"])
        _warn_if_placeholder_dates(ds["time"].values)
        values = _tile_aligned(ds["reflectance"], prior.tile_size, chunks)
        grid = TileGrid.for_shape(values.sizes["y"], values.sizes["x"], prior.tile_size)
        k = _n_tokens(prior, ratio, tokens, values, grid)
        attrs = values.attrs
        fill = attrs.get("_FillValue")
        lon, lat = grid.centres(ds)
        spec = CodingSpec(
            model=ref,
            tile=prior.tile_size,
            n_tokens=k,
            wavelength=tuple(float(w) for w in ds["wavelength"].values),
            bandwidth=tuple(float(w) for w in ds["bandwidth"].values),
            dtype=values.dtype.str,
            scale_factor=float(attrs.get("scale_factor", 1.0)),
            add_offset=float(attrs.get("add_offset", 0.0)),
            fill_value=None if fill is None else float(fill),
            n_ty=grid.n_ty,
            n_tx=grid.n_tx,
            seed=int(seed),
            steps=int(steps),
        )
        time, sensor = ds["time"].values, ds["sensor"].values
        data = values.data
        if exact_ratio:
            if ratio is None:
                raise ValueError("exact_ratio=True needs ratio=. Got tokens= instead.")
            cluster = {"scheduler": scheduler, "resources": resources}
            token_array, spec = _measured_prefix(prior, data, lat, lon, time, sensor, spec, ratio, cluster)
            k = spec.n_tokens
        else:
            token_array = parallel.encode(data, lat, lon, time, sensor, spec=spec)
        nodata = _nodata(data, spec.fill_value)
        out = store.build(
            _aligned(ds, dict(zip(values.dims, values.chunks))),
            token_array,
            nodata,
            lat,
            lon,
            {
                "model_name": prior.name,
                "model_sha256": prior.sha256,
                "model_nbytes": int(prior.nbytes),
                "tile_size": prior.tile_size,
                "n_tokens": k,
                "codebook_size": int(prior.codebook_size),
                "ratio": None if ratio is None else float(ratio),
                "seed": int(seed),
                "steps": int(steps),
                "variable": "reflectance",
                "kind": kind,
                "name": name,
                "dtype": values.dtype.str,
                "shape": tuple(values.shape),
                "chunks": None if self._source_chunks() is None else tuple(values.chunks),
                "scale_factor": spec.scale_factor,
                "add_offset": spec.add_offset,
                "fill_value": spec.fill_value,
            },
        )
        return out

    def _source_chunks(self) -> Any:
        obj = self._obj
        return obj.chunks if isinstance(obj, xr.DataArray) else obj["reflectance"].chunks


@xr.register_dataset_accessor("d2ar")
class D2arDatasetAccessor(_D2arBase):
    """``ds.d2ar``: compress a canonical cube; reconstruct and store a token Dataset."""

    def _cube(self) -> tuple[xr.Dataset, str, str | None]:
        return self._obj, "Dataset", None

    def layout(self) -> store.TokenLayout:
        """The token Dataset's layout (raises CubeValidationError on a plain cube)."""
        return store.TokenLayout.from_attrs(self._obj.attrs)

    def reconstruct(
        self, model: ModelLike = None, *, engine: str | None = None
    ) -> xr.Dataset | xr.DataArray:
        """Decode the token Dataset into the original-looking cube, lazily (Dask).

        Parameters
        ----------
        model : D2arModel or path, optional
            The prior to decode with; by default the one the store names, found by sha256
            (``$XR_D2AR_MODEL_PATH`` for non-default priors).
        engine : {"auto", "torch", "cext"}, optional
            What decodes the tiles (default: the ``decode_engine`` option, ``"auto"``: cext on
            CPUs where it is the faster, torch elsewhere). ``"cext"`` runs our CPU kernels: the
            same bits on every CPU, batch and thread count.

        Returns
        -------
        xarray.Dataset or xarray.DataArray
            Same dims, coords, attrs, dtypes and CRS as the compressed cube; masks exact; nodata
            pixels hold the fill value.

        Raises
        ------
        ModelMismatchError
            If the prior is missing or has another sha256.
        """
        tokens = self._obj
        layout = self.layout()
        spec = CodingSpec.for_layout(
            layout,
            ref_for_store(layout, model),
            tokens["wavelength"].values,
            tokens["bandwidth"].values,
            engine,
        )
        token_data = _as_dask(tokens[store.TOKENS])
        nodata = _as_dask(tokens[store.NODATA])
        values = parallel.decode(
            token_data,
            nodata,
            tokens[store.TILE_LAT].values,
            tokens[store.TILE_LON].values,
            tokens["time"].values,
            tokens["sensor"].values,
            spec=spec,
        )
        return store.restore(tokens, values)

    def encoding(self, *, zarr_format: int = 3) -> dict[str, dict[str, Any]]:
        """Zarr encoding of the token Dataset (see :func:`xr_d2ar.store.encoding`)."""
        return store.encoding(self._obj, zarr_format=zarr_format)

    def to_zarr(
        self,
        path: str | os.PathLike,
        *,
        zarr_format: int = 3,
        mode: str = "w-",
        compute: bool = True,
        scheduler: str | Client | None = None,
        resources: dict[str, float] | None = None,
        progress: bool | None = None,
    ) -> store.StoreSizes | Any:
        """Write the token Dataset to a Zarr store (v2 or v3), computing the tokens.

        Parameters
        ----------
        path : str or PathLike
            Store location (a local folder or an fsspec URL).
        zarr_format : {2, 3}
            Zarr format.
        mode : str
            ``"w-"`` (fail if it exists) or ``"w"`` (overwrite).
        compute : bool
            If False, write metadata only and return the Dask ``Delayed`` that writes the chunks.
        scheduler, resources, progress
            See :func:`xr_d2ar.parallel.compute`.

        Returns
        -------
        StoreSizes or Delayed
            Sizes on disk against the source bytes (local stores), or the pending write.
        """
        import zarr

        layout = self.layout()
        if mode == "w-" and isinstance(path, (str, os.PathLike)) and Path(path).exists():
            raise FileExistsError(
                f"{path} already exists. Pass mode='w' to overwrite it, or choose another path."
            )
        ds = store.for_zarr(self._obj, zarr_format)
        with zarr.config.set({"json_indent": None}):  # compact metadata: it counts in the ratio
            pending = ds.to_zarr(
                path,
                mode=mode,
                zarr_format=zarr_format,
                consolidated=False,
                compute=False,
                encoding=self.encoding(zarr_format=zarr_format),
            )
        if not compute:
            return pending
        ref_path = lookup.known_path(layout.model_sha256)
        # marked incomplete until every chunk is in: a store whose write fails or is
        # interrupted keeps the mark and is refused on open (not deleted here: after Ctrl-C the
        # scheduler's threads still finish the chunks they were writing)
        store.mark_incomplete(path, True)
        try:
            parallel.compute(
                pending,
                scheduler=scheduler,
                resources=resources,
                progress=progress,
                model_paths=() if ref_path is None else (str(ref_path),),
            )
        except BaseException as exc:
            exc.add_note(
                f"xr_d2ar: {path} was left incomplete (marked so, and refused on open): write "
                "it again with mode='w' (d2ar compress --overwrite) or delete it."
            )
            raise
        store.mark_incomplete(path, False)
        if not Path(path).is_dir():
            return None
        sizes = store.store_sizes(path)
        _warn_if_short(layout, sizes, path)
        return sizes


#: Landsat 1's launch: no satellite reflectance is older, so an earlier date is a placeholder.
_FIRST_EO_DATE = np.datetime64("1972-07-23")


def _warn_if_placeholder_dates(time: np.ndarray) -> None:
    """Warn about dates older than any Earth-observation satellite (e.g. 1970-01-01, the Unix
    epoch, standing for an unknown date): the prior is conditioned on the date."""
    early = np.unique(time[time < _FIRST_EO_DATE])
    if early.size:
        warnings.warn(
            f"Date(s) {[str(t)[:10] for t in early[:5]]} precede every Earth-observation "
            "satellite (Landsat 1, 1972): a placeholder for an unknown date? The prior is "
            "conditioned on the date (season), so quality may suffer; set the acquisition dates "
            "if known.",
            UserWarning,
            stacklevel=3,
        )


def _warn_if_decoded(da: xr.DataArray) -> None:
    """Warn when ``da`` was unpacked from a smaller stored dtype (xarray's mask_and_scale): the
    ratio then counts its in-memory bytes, not the file's, and reconstructs the unpacked form."""
    stored = da.encoding.get("dtype")
    if stored is None or np.dtype(stored).itemsize >= da.dtype.itemsize:
        return
    warnings.warn(
        f"reflectance is {da.dtype} in memory but {np.dtype(stored)} in its file (xarray unpacked "
        "it with scale_factor/_FillValue): ratio= counts the in-memory bytes, "
        f"{da.dtype.itemsize // np.dtype(stored).itemsize}x the file's, and the reconstruction is "
        f"{da.dtype}. Open the file with xr_d2ar.datasets.open_cube(path) (or "
        "xr.open_dataset(path, mask_and_scale=False)) to compress the stored integers.",
        UserWarning,
        stacklevel=3,
    )


#: Achieved token ratio below this share of the requested one is reported with a warning.
_SHORT_RATIO = 0.9


def _warn_if_short(
    layout: store.TokenLayout, sizes: store.StoreSizes, path: str | os.PathLike
) -> None:
    """Warn when the tokens on disk fall clearly short of the ratio ``compress`` was asked for,
    naming the cause: the chunks' fixed headers (a small cube) or the tokens' own bits."""
    if layout.ratio is None or not sizes.token_bytes:
        return
    if sizes.token_ratio >= _SHORT_RATIO * layout.ratio:
        return
    n_files, headers = store.token_headers(path)
    if 2 * headers >= sizes.token_bytes:  # the fixed cost per chunk dominates
        fix = ("use fewer, larger chunks (e.g. chunks={'time': -1})" if n_files > 1 else
               "it is one chunk already: compress more dates or a larger area together")
        cause = (f"the {n_files} token chunk(s) spend {headers} of their {sizes.token_bytes} B "
                 f"on headers, a fixed cost per chunk that this little data cannot spread; {fix}")
    else:
        cause = ("this cube's tokens cost more bits than the prior's token model expects. "
                 "Compress with a higher ratio (ratio=, --ratio), fewer tokens (tokens=, "
                 "--tokens), or exact_ratio=True (--exact-ratio) to stay within budget")
    warnings.warn(
        f"Asked for ratio={layout.ratio:g}, got {sizes.token_ratio:.0f}x on disk for the tokens "
        f"({layout.n_tokens} per tile): {cause}.",
        UserWarning,
        stacklevel=3,
    )


def _as_dask(array: xr.DataArray) -> da.Array:
    data = array.data
    return data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=-1)


@xr.register_dataarray_accessor("d2ar")
class D2arDataArrayAccessor(_D2arBase):
    """``da.d2ar``: compress a ``(time, band, y, x)`` DataArray (with CRS, dates, wavelengths)."""

    def _cube(self) -> tuple[xr.Dataset, str, str | None]:
        name = None if self._obj.name is None else str(self._obj.name)
        return self._obj.to_dataset(name="reflectance"), "DataArray", name
