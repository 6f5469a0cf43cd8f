"""Dask layer: encode and decode as block-wise tasks over tile-aligned chunks.

Tasks carry a :class:`ModelRef` (sha256, name, optional weights path), never the model: each worker
process loads the prior once and caches it by ``(sha256, device)``
(:func:`xr_d2ar.codecs.lookup.find_model`). :func:`compute` runs on the local scheduler with a tqdm
bar, or on a ``distributed`` cluster (a ``Client``, a scheduler address, or the active client) with
distributed's progress bar; ``resources=`` (e.g. ``{"GPU": 1}``) pins the tasks to GPU workers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import dask
import dask.array as da
import numpy as np

from xr_d2ar._options import DECODE_ENGINES, OPTIONS
from xr_d2ar.codecs import lookup
from xr_d2ar.errors import ModelMismatchError
from xr_d2ar.packing import stored_to_physical
from xr_d2ar.store import NODATA_FILL, NODATA_NAN, TokenLayout, token_chunks
from xr_d2ar.tiling import TileGrid, flatten_tiles, unflatten_tiles

if TYPE_CHECKING:
    from distributed import Client

    from xr_d2ar.model.api import D2arModel

ModelLike = Union["D2arModel", str, os.PathLike, None]

__all__ = [
    "CodingSpec",
    "ModelRef",
    "compute",
    "decode",
    "decode_tiles",
    "encode",
    "encode_block",
    "load_prior",
    "ref_for_store",
]

_BATCH_BYTES = 1 << 24  # float32 input bytes per model call


@dataclass(frozen=True)
class ModelRef:
    """How a worker finds a prior: its sha256, name and (optionally) weights file."""

    sha256: str
    name: str
    path: str | None = None

    @classmethod
    def of(cls, model: D2arModel, path: str | os.PathLike | None = None) -> ModelRef:
        """Reference to a loaded model (remembered in this process, so workers here find it).

        ``path`` defaults to the weights file the model was loaded from, so that worker processes
        load the same prior.
        """
        path = path if path is not None else getattr(model, "path", None)
        lookup.remember(model, path)
        return cls(model.sha256, model.name, None if path is None else os.fspath(path))

    def load(self) -> D2arModel:
        """The model, loaded once per process and device."""
        return lookup.find_model(self.sha256, name=self.name, path=self.path)


@dataclass(frozen=True)
class CodingSpec:
    """What an encode or decode task needs besides its data block (small and picklable).

    Attributes
    ----------
    model : ModelRef
    tile : int
        Tile side T (pixels).
    n_tokens : int
        Tokens per tile.
    wavelength, bandwidth : tuple of float
        Per band (nm).
    dtype : str
        Source storage dtype.
    scale_factor, add_offset : float
        Physical = stored * scale_factor + add_offset.
    fill_value : float or None
        Source nodata (NaN for float cubes).
    n_ty, n_tx : int
        Tiles per image (for the global tile index that seeds the decode noise).
    seed, steps : int
        Decode noise seed and sampler steps.
    engine : str
        Decoder: ``"torch"`` or ``"cext"`` (:mod:`xr_d2ar.runtime`, CPU only).
    """

    model: ModelRef
    tile: int
    n_tokens: int
    wavelength: tuple[float, ...]
    bandwidth: tuple[float, ...]
    dtype: str
    scale_factor: float
    add_offset: float
    fill_value: float | None
    n_ty: int
    n_tx: int
    seed: int = 0
    steps: int = 8
    engine: str = "auto"

    @classmethod
    def for_layout(
        cls,
        layout: TokenLayout,
        model: ModelRef,
        wavelength: Any,
        bandwidth: Any,
        engine: str | None = None,
    ) -> CodingSpec:
        """Decode settings of a token Dataset (its layout and per-band wavelength/bandwidth, nm).

        ``engine``: ``"auto"``, ``"torch"`` or ``"cext"``; ``None`` takes the ``decode_engine``
        option (see :class:`xr_d2ar.set_options`).
        """
        engine = OPTIONS["decode_engine"] if engine is None else engine
        if engine not in DECODE_ENGINES:
            raise ValueError(
                f"engine must be one of {DECODE_ENGINES}. Got {engine!r} instead."
            )
        grid = layout.grid
        return cls(
            model=model,
            tile=layout.tile_size,
            n_tokens=layout.n_tokens,
            wavelength=tuple(float(w) for w in np.asarray(wavelength)),
            bandwidth=tuple(float(w) for w in np.asarray(bandwidth)),
            dtype=layout.dtype,
            scale_factor=layout.scale_factor,
            add_offset=layout.add_offset,
            fill_value=layout.fill_value,
            n_ty=grid.n_ty,
            n_tx=grid.n_tx,
            seed=layout.seed,
            steps=layout.steps,
            engine=engine,
        )

    def batch(self) -> int:
        """Tiles per model call."""
        per_tile = len(self.wavelength) * self.tile * self.tile * 4
        return max(1, _BATCH_BYTES // per_tile)

    def to_physical(self, stored: np.ndarray) -> np.ndarray:
        """Stored values -> float32 physical values, NaN at nodata (:func:`stored_to_physical`)."""
        return stored_to_physical(stored, self.scale_factor, self.add_offset, self.fill_value)

    def to_stored(self, phys: np.ndarray) -> np.ndarray:
        """float32 physical values -> storage dtype; valid pixels never take the fill value."""
        from xr_d2ar.baselines._base import to_stored

        dtype = np.dtype(self.dtype)
        raw = (phys.astype(np.float64) - self.add_offset) / self.scale_factor
        if not np.issubdtype(dtype, np.integer):
            return raw.astype(dtype)
        info = np.iinfo(dtype)
        out = to_stored(np.nan_to_num(raw), dtype)
        fill = self.fill_value
        if fill is not None and info.min <= fill <= info.max:
            out[out == fill] = fill + 1 if fill < info.max else fill - 1
        return out

    def restore_nodata(self, out: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Put the source's fill value / NaN back where ``codes`` (the store's nodata) say; in place."""
        codes = np.asarray(codes)
        fill = codes == NODATA_FILL
        if fill.any():
            out[fill] = np.dtype(self.dtype).type(self.fill_value)
        nan = codes == NODATA_NAN
        if nan.any():
            out[nan] = np.nan
        return out


def load_prior(model: ModelLike) -> tuple[D2arModel, ModelRef]:
    """A prior and its reference: ``None`` (shipped default), a prior's path, or a loaded model."""
    from xr_d2ar.model import load_model
    from xr_d2ar.model.checkpoint import prior_paths

    if model is None or isinstance(model, (str, os.PathLike)):
        path = None if model is None else prior_paths(model)[0]
        loaded = load_model(path)
        return loaded, ModelRef.of(loaded, path)
    if not all(hasattr(model, a) for a in ("sha256", "encode_tiles", "decode_tiles")):
        raise TypeError(
            "model must be None (the shipped prior), a prior's path or a model from "
            f"xr_d2ar.model.load_model(). Got {type(model).__name__} instead."
        )
    return model, ModelRef.of(model)


def ref_for_store(layout: TokenLayout, model: ModelLike = None) -> ModelRef:
    """Reference to the prior that decodes a token Dataset, checked by sha256.

    Raises
    ------
    ModelMismatchError
        If the prior is not available (``model=None``) or ``model`` has another sha256.
    """
    if model is None:
        found = lookup.find_model(layout.model_sha256, name=layout.model_name)
        path = lookup.known_path(layout.model_sha256)
        return ModelRef(found.sha256, found.name, None if path is None else str(path))
    prior, ref = load_prior(model)
    if prior.sha256 != layout.model_sha256:
        raise ModelMismatchError(
            f"The tokens were made by prior {layout.model_name!r} (sha256 {layout.model_sha256}). "
            f"Got prior {prior.name!r} (sha256 {prior.sha256}) instead. "
            "Pass the prior that encoded "
            "them, or leave model=None to find it by sha256.",
            expected=layout.model_sha256,
            got=prior.sha256,
        )
    return ref


# --------------------------------------------------------------------------- numpy blocks


def encode_block(
    stored: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    time: np.ndarray,
    sensor: np.ndarray,
    *,
    spec: CodingSpec,
) -> np.ndarray:
    """Encode one block: ``stored (nt, B, ny, nx)`` -> tokens ``(nt, n_ty, n_tx, k)`` int32.

    ``lat``/``lon`` are the block's tile centres ``(n_ty, n_tx)``; ``time``/``sensor`` ``(nt,)``.
    """
    model = spec.model.load()
    nt, _, ny, nx = stored.shape
    grid = TileGrid.for_shape(ny, nx, spec.tile)
    tiles = flatten_tiles(grid.to_tiles(spec.to_physical(stored)))  # (nt * n_ty * n_tx, B, T, T)
    out = np.empty((tiles.shape[0], spec.n_tokens), np.int32)
    for sl, cond in _batches(lat, lon, time, sensor, spec):
        out[sl] = model.encode_tiles(tiles[sl], n_tokens=spec.n_tokens, **cond)
    return out.reshape(nt, grid.n_ty, grid.n_tx, spec.n_tokens)


def decode_tiles(
    tokens: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    time: np.ndarray,
    sensor: np.ndarray,
    tile_index: np.ndarray,
    *,
    spec: CodingSpec,
) -> np.ndarray:
    """Decode tokens ``(nt, R, C, k)`` of tiles at ``lat/lon (R, C)``, ``time/sensor (nt,)``.

    ``tile_index (nt, R, C)`` is each tile's global index (seeds its noise). Returns stored values
    ``(nt, B, R, C, T, T)`` (nodata not applied).
    """
    model = spec.model.load()
    nt, rows, cols, k = tokens.shape
    decode = _decoder(model, spec.engine, min(nt * rows * cols, spec.batch()))
    solver = model.config.get("decode", {}).get("solver", "euler")
    flat = tokens.reshape(nt * rows * cols, k)
    index = tile_index.reshape(-1).astype(np.int64)
    out = np.empty(
        (flat.shape[0], len(spec.wavelength), spec.tile, spec.tile), np.dtype(spec.dtype)
    )
    for sl, cond in _batches(lat, lon, time, sensor, spec):
        phys = decode(
            flat[sl], tile_index=index[sl], seed=spec.seed, steps=spec.steps, solver=solver, **cond
        )
        out[sl] = spec.to_stored(phys)
    return unflatten_tiles(out, nt, rows, cols)


def _decoder(model: D2arModel, engine: str, n_tiles: int | None = None) -> Callable[..., np.ndarray]:
    """``model.decode_tiles`` (torch) or its cext twin (CPU runtime); ``"auto"`` picks the cext
    runtime for a model on a CPU where it is the faster for calls of ``n_tiles`` tiles
    (:func:`xr_d2ar.runtime.preferred`)."""
    from xr_d2ar import runtime

    if engine == "cext" or (engine == "auto" and runtime.preferred(model, n_tiles)):
        return functools.partial(runtime.decode_tiles, model)
    return model.decode_tiles


def _batches(lat, lon, time, sensor, spec: CodingSpec) -> Iterator[tuple[slice, dict[str, Any]]]:
    """Batches of tiles in (time, row, col) order with their conditioning keyword arguments.

    ``lat``/``lon`` are ``(rows, cols)`` tile centres, ``time``/``sensor`` ``(nt,)``.
    """
    per_tile = tile_conditioning(lat, lon, time, sensor)
    bands = {
        "wavelength": np.asarray(spec.wavelength, np.float32),
        "bandwidth": np.asarray(spec.bandwidth, np.float32),
    }
    size = spec.batch()
    for start in range(0, len(per_tile["time"]), size):
        sl = slice(start, start + size)
        yield sl, {**bands, **{key: value[sl] for key, value in per_tile.items()}}


def tile_conditioning(
    lat: np.ndarray, lon: np.ndarray, time: np.ndarray, sensor: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-tile conditioning of ``nt`` images of ``R x C`` tiles, in :func:`flatten_tiles` order.

    ``lat``/``lon`` ``(R, C)`` tile centres (degrees), ``time``/``sensor`` ``(nt,)``. Returns
    ``lat``/``lon`` float64, ``time`` datetime64[ns], ``sensor`` str, each ``(nt * R * C,)``.
    """
    nt, n = len(time), np.size(lat)
    return {
        "lat": np.tile(np.asarray(lat, np.float64).reshape(-1), nt),
        "lon": np.tile(np.asarray(lon, np.float64).reshape(-1), nt),
        "time": np.repeat(np.asarray(time, "datetime64[ns]"), n),
        "sensor": np.repeat(_strings(sensor), n),
    }


def _strings(values: Any) -> np.ndarray:
    """Fixed-width unicode array of any string-like array (numpy ``str``, object, StringDType)."""
    values = np.asarray(values)
    return np.array([str(v) for v in values.reshape(-1)], dtype=str).reshape(values.shape)


def tile_index(t: np.ndarray, rows: np.ndarray, cols: np.ndarray, spec: CodingSpec) -> np.ndarray:
    """Global tile index ``(nt, R, C)``: ``(t * n_ty + row) * n_tx + col``."""
    t, rows, cols = (np.asarray(a, np.int64) for a in (t, rows, cols))
    return (t[:, None, None] * spec.n_ty + rows[None, :, None]) * spec.n_tx + cols[None, None, :]


def _decode_block(tokens, nodata, lat, lon, time, sensor, t, rows, cols, *, spec: CodingSpec):
    """Decode one Dask block to ``(nt, B, ny, nx)`` stored values with nodata restored."""
    tiles = decode_tiles(tokens, lat, lon, time, sensor, tile_index(t, rows, cols, spec), spec=spec)
    ny, nx = nodata.shape[-2:]
    out = TileGrid.for_shape(ny, nx, spec.tile).from_tiles(tiles)
    return spec.restore_nodata(np.array(out, copy=True), nodata)


# --------------------------------------------------------------------------- Dask graphs


def encode(
    stored: da.Array,
    lat: np.ndarray,
    lon: np.ndarray,
    time: np.ndarray,
    sensor: np.ndarray,
    *,
    spec: CodingSpec,
) -> da.Array:
    """Lazy tokens ``(time, n_ty, n_tx, k)`` of a tile-aligned Dask cube ``(time, band, y, x)``."""
    _, tile_y, tile_x = token_chunks(stored.chunks, spec.tile)
    lat_d = da.from_array(np.asarray(lat), chunks=(tile_y, tile_x))
    lon_d = da.from_array(np.asarray(lon), chunks=(tile_y, tile_x))
    time_d = da.from_array(np.asarray(time), chunks=(stored.chunks[0],))
    sensor_d = da.from_array(_strings(sensor), chunks=(stored.chunks[0],))
    return da.blockwise(
        encode_block,
        "tyxk",
        stored,
        "tbyx",
        lat_d,
        "yx",
        lon_d,
        "yx",
        time_d,
        "t",
        sensor_d,
        "t",
        new_axes={"k": spec.n_tokens},
        adjust_chunks={"y": tile_y, "x": tile_x},
        align_arrays=False,
        concatenate=True,
        dtype=np.int32,
        meta=np.empty((0, 0, 0, 0), np.int32),
        spec=spec,
        name="d2ar-encode-" + _token(stored, spec),
    )


def decode(
    tokens: da.Array,
    nodata: da.Array,
    lat: np.ndarray,
    lon: np.ndarray,
    time: np.ndarray,
    sensor: np.ndarray,
    *,
    spec: CodingSpec,
) -> da.Array:
    """Lazy stored values ``(time, band, y, x)`` from tokens and the nodata mask (pixel chunks)."""
    tokens = tokens.rechunk({3: -1})
    nodata = nodata.rechunk({0: tokens.chunks[0], 1: -1})
    _, tile_y, tile_x = token_chunks(nodata.chunks, spec.tile)
    if (tile_y, tile_x) != tokens.chunks[1:3]:
        tokens = tokens.rechunk({1: tile_y, 2: tile_x})

    def arr(values: np.ndarray, chunks: tuple) -> da.Array:
        return da.from_array(np.asarray(values), chunks=chunks)

    n_t = tokens.shape[0]
    return da.blockwise(
        _decode_block,
        "tbyx",
        tokens,
        "tyxk",
        nodata,
        "tbyx",
        arr(lat, (tile_y, tile_x)),
        "yx",
        arr(lon, (tile_y, tile_x)),
        "yx",
        arr(time, (tokens.chunks[0],)),
        "t",
        arr(_strings(sensor), (tokens.chunks[0],)),
        "t",
        arr(np.arange(n_t), (tokens.chunks[0],)),
        "t",
        arr(np.arange(spec.n_ty), (tile_y,)),
        "y",
        arr(np.arange(spec.n_tx), (tile_x,)),
        "x",
        adjust_chunks={"y": nodata.chunks[2], "x": nodata.chunks[3]},
        align_arrays=False,
        concatenate=True,
        dtype=np.dtype(spec.dtype),
        meta=np.empty((0, 0, 0, 0), np.dtype(spec.dtype)),
        spec=spec,
        name="d2ar-decode-" + _token(tokens, spec),
    )


def _token(*args: Any) -> str:
    return dask.base.tokenize(*args)


# --------------------------------------------------------------------------- running


def compute(
    *collections: Any,
    scheduler: str | Client | None = None,
    resources: dict[str, float] | None = None,
    progress: bool | None = None,
    model_paths: Sequence[str] = (),
) -> tuple[Any, ...]:
    """Compute Dask collections locally or on a ``distributed`` cluster, with a progress bar.

    Parameters
    ----------
    *collections
        Dask collections or ``Delayed`` objects (e.g. ``ds.to_zarr(..., compute=False)``).
    scheduler : str or distributed.Client, optional
        ``None``: the active distributed client if any, else Dask's default local scheduler;
        ``"threads"``, ``"processes"``, ``"synchronous"``: that local scheduler; an address such
        as ``"tcp://10.0.0.1:8786"``: connect to that cluster; a ``Client``: use it.
    resources : dict, optional
        Worker resources every task needs, e.g. ``{"GPU": 1}`` (distributed only).
    progress : bool, optional
        Show a progress bar (default: ``xr_d2ar.get_options()['progress']``).
    model_paths : sequence of str
        Weights files of non-default priors, registered on every current worker (by path, never
        the model itself) so that workers find them by sha256.

    Returns
    -------
    tuple
        The computed results, as :func:`dask.compute` returns them.
    """
    show = OPTIONS["progress"] if progress is None else progress
    client, owned = _client(scheduler)
    if client is None:
        if resources:
            raise ValueError(
                "resources= pins tasks to distributed workers. Got resources="
                f"{resources!r} with a local scheduler instead. "
                "Pass scheduler='tcp://...' or a Client."
            )
        from tqdm.dask import TqdmCallback
        from tqdm.std import tqdm

        bar = TqdmCallback(desc="d2ar", leave=False, tqdm_class=tqdm) if show else nullcontext()
        with bar:
            return dask.compute(*collections, scheduler=scheduler)
    try:
        for path in model_paths:
            client.run(lookup.register_model_path, path)
        futures = client.compute(list(collections), resources=resources)
        if show:
            from distributed import progress as distributed_progress

            distributed_progress(futures)
        return tuple(client.gather(futures))
    finally:
        if owned:
            client.close()


def _client(scheduler: Any) -> tuple[Client | None, bool]:
    """The distributed client to use (and whether we own it), or None for a local scheduler."""
    if scheduler in ("threads", "threading", "processes", "multiprocessing", "sync", "synchronous"):
        return None, False
    try:
        from distributed import Client, default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None, False
    if isinstance(scheduler, Client):
        return scheduler, False
    if isinstance(scheduler, str):
        return Client(scheduler), True
    if scheduler is not None:
        raise TypeError(
            "scheduler must be None, 'threads', 'processes', 'synchronous', an address like "
            f"'tcp://host:8786' or a distributed.Client. Got {scheduler!r} instead."
        )
    try:
        return default_client(), False
    except ValueError:
        return None, False
