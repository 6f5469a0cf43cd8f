"""Training data: canonical cubes -> a stream of images -> a bank of random tiles on the device.

``CubeSource`` wraps one cube (a lazy xarray Dataset, or the arrays of a tile pack) and reads one
image (all bands of one date) at a time. ``TileBank`` streams images from every source in random
order, cuts random tiles (origins on a stride-8 pixel grid; far-edge tiles are edge-padded as at
inference, with the padding masked out of the loss) and keeps up to ``capacity`` of them, normalised,
in device memory; ``refresh`` swaps in new tiles from the stream for archives larger than the bank.
Batches draw cubes uniformly, then tiles uniformly within the cube.

A *tile pack* (:func:`pack`) is the same content as compressed ``.npz`` files (no pickle), for
machines without the NetCDF/Zarr stack (e.g. a GPU node).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from xr_d2ar.errors import CubeValidationError
from xr_d2ar.model.conditioning import date_features, geo_features
from xr_d2ar.model.normalise import band_stats, normalise
from xr_d2ar.packing import stored_to_physical

__all__ = ["ORIGIN_STRIDE", "Batch", "CubeSource", "TileBank", "load_pack", "pack"]

ORIGIN_STRIDE = 8  # tile origins lie on this pixel grid


class CubeSource:
    """One canonical cube, read image by image.

    Parameters
    ----------
    name : str
        Cube name (recorded in the prior's config).
    arrays : dict
        ``reflectance`` (time, band, y, x) stored values (xarray DataArray read lazily, or ndarray),
        optional ``valid`` (time, y, x); see :meth:`from_dataset`.
    meta : dict
        ``scale``, ``offset``, ``fill`` (float or None), ``units``, ``time`` (datetime64[ns] (t,)),
        ``sensor`` (str (t,)), ``band`` (str (band,)), ``wavelength``/``bandwidth`` ((band,) or
        (time, band) nm),
        ``lat``/``lon`` ((n_oy, n_ox) tile-centre degrees for origins on the stride grid) at ``tile``.
    """

    def __init__(self, name: str, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
        self.name = name
        self.arrays = arrays
        self.meta = meta
        _, self.n_bands, self.ny, self.nx = arrays["reflectance"].shape

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, *, name: str, tile: int) -> CubeSource:
        """Wrap a canonical cube (lazy: nothing but coordinates is read here)."""
        from xr_d2ar.datasets import validate_cube
        from xr_d2ar.geo import lonlat

        validate_cube(ds)
        da = ds["reflectance"]
        if ds.sizes["time"] == 0:
            raise CubeValidationError(f"Cube {name!r} has no dates to train on. Got 0 time steps.")
        ny, nx = ds.sizes["y"], ds.sizes["x"]
        oy, ox = _origins(ny, tile), _origins(nx, tile)
        # centres of tiles whose origins lie on the stride grid, continuing the pixel spacing
        x, y = ds["x"].values.astype(np.float64), ds["y"].values.astype(np.float64)
        dx = x[1] - x[0] if x.size > 1 else 1.0
        dy = y[1] - y[0] if y.size > 1 else -1.0
        cx = x[0] + (np.asarray(ox) + (tile - 1) / 2.0) * dx
        cy = y[0] + (np.asarray(oy) + (tile - 1) / 2.0) * dy
        lon, lat = lonlat(ds, cy[:, None], cx[None, :])
        wl = ds["sensor_wavelength"].values if "sensor_wavelength" in ds else ds["wavelength"].values
        bw = ds["sensor_bandwidth"].values if "sensor_bandwidth" in ds else ds["bandwidth"].values
        fill = da.attrs.get("_FillValue")
        meta = {
            "scale": float(da.attrs.get("scale_factor", 1.0)),
            "offset": float(da.attrs.get("add_offset", 0.0)),
            "fill": None if fill is None or (isinstance(fill, float) and np.isnan(fill)) else float(fill),
            "units": str(da.attrs.get("units", "1")),
            "time": ds["time"].values.astype("datetime64[ns]"),
            "sensor": np.asarray(ds["sensor"].values).astype(str),
            "wavelength": np.asarray(wl, np.float64),
            "bandwidth": np.asarray(bw, np.float64),
            "band": np.asarray(ds["band"].values).astype(str),
            "lat": lat,
            "lon": lon,
            "tile": tile,
        }
        arrays = {"reflectance": da}
        if "valid" in ds:
            arrays["valid"] = ds["valid"]
        return cls(name, arrays, meta)

    @property
    def n_times(self) -> int:
        """Number of images (dates)."""
        return len(self.meta["time"])

    def band_meta(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Wavelength and bandwidth (B,) nm of image i."""
        wl, bw = self.meta["wavelength"], self.meta["bandwidth"]
        return (wl[i] if wl.ndim == 2 else wl), (bw[i] if bw.ndim == 2 else bw)

    def image(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Image i: physical values (B, y, x) float32 with NaN at nodata, clear mask (y, x) bool."""
        raw = np.asarray(self.arrays["reflectance"][i])
        phys = stored_to_physical(raw, self.meta["scale"], self.meta["offset"], self.meta["fill"])
        phys[~np.isfinite(phys)] = np.nan  # training also drops +-inf (no loss on them)
        if "valid" in self.arrays:
            clear = np.asarray(self.arrays["valid"][i]).astype(bool)
        else:
            clear = np.ones((self.ny, self.nx), bool)
        return phys, clear

    def origins(self) -> tuple[list[int], list[int]]:
        """Possible tile origins (pixels) along y and x."""
        t = self.meta["tile"]
        return _origins(self.ny, t), _origins(self.nx, t)


def _origins(n: int, tile: int) -> list[int]:
    """Origins on the stride grid from 0 while a tile still covers at least half a tile of image."""
    last = max(n - tile // 2, 0)
    return list(range(0, last + 1, ORIGIN_STRIDE)) or [0]


# --------------------------------------------------------------------------- packs


def pack(sources: Sequence[CubeSource], folder: str | os.PathLike) -> list[Path]:
    """Write each source as ``<folder>/<name>.npz`` (compressed, no pickle); returns the paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for src in sources:
        m = src.meta
        arrays = {
            "reflectance": np.asarray(src.arrays["reflectance"]),
            "time": m["time"].astype("datetime64[ns]").astype(np.int64),
            "sensor": m["sensor"].astype(str),
            "wavelength": m["wavelength"],
            "bandwidth": m["bandwidth"],
            "band": m["band"].astype(str),
            "lat": m["lat"],
            "lon": m["lon"],
            "scalars": np.array(json.dumps({k: m[k] for k in ("scale", "offset", "fill", "units", "tile")})),
        }
        if "valid" in src.arrays:
            arrays["valid"] = np.asarray(src.arrays["valid"]).astype(np.uint8)
        path = out / f"{src.name}.npz"
        np.savez_compressed(path, **arrays)
        paths.append(path)
    return paths


def load_pack(folder: str | os.PathLike) -> list[CubeSource]:
    """Read every ``*.npz`` written by :func:`pack` in ``folder`` (sorted by name)."""
    sources = []
    for path in sorted(Path(folder).glob("*.npz")):
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["scalars"]))
            meta.update(
                time=z["time"].astype("datetime64[ns]"),
                sensor=z["sensor"].astype(str),
                wavelength=z["wavelength"],
                bandwidth=z["bandwidth"],
                band=z["band"].astype(str),
                lat=z["lat"],
                lon=z["lon"],
            )
            arrays = {"reflectance": z["reflectance"]}
            if "valid" in z:
                arrays["valid"] = z["valid"]
        sources.append(CubeSource(path.stem, arrays, meta))
    if not sources:
        raise CubeValidationError(f"No *.npz tile pack in {folder}. Write one with xr_d2ar.train.data.pack().")
    return sources


# --------------------------------------------------------------------------- the bank


@dataclass
class Batch:
    """A training batch on the device (N tiles, B = bank's max band count, T tile side).

    x: (N, B, T, T) normalised values (0 at nodata); data: (N, B, T, T) 1 where a value exists;
    weight: (N, B, T, T) loss weight (0 nodata/padding/absent band, ``cloud_weight`` on not-clear);
    wavelength, bandwidth: (N, B) nm; geo (N, G), date (N, 5) float32; sensor (N,) int64.
    """

    x: torch.Tensor
    data: torch.Tensor
    weight: torch.Tensor
    wavelength: torch.Tensor
    bandwidth: torch.Tensor
    geo: torch.Tensor
    date: torch.Tensor
    sensor: torch.Tensor


class TileBank:
    """Random normalised tiles of every source, held on ``device``.

    Parameters
    ----------
    sources : sequence of CubeSource
    tile : int
        Tile side T.
    stats : dict
        Normalisation stats (see :mod:`xr_d2ar.model.normalise`).
    sensors : list of str
        Sensor vocabulary (index 0 = unknown).
    geo_octaves : int
        For the place features.
    tiles_per_area : float
        Tiles cut per image per ``T * T`` pixels of image (at least 1 per image).
    capacity : int
        Most tiles held at once.
    cloud_weight : float
        Loss weight of pixels that are not clear (clouds, shadows) but hold data.
    device : torch.device or str
    seed : int
    """

    def __init__(
        self,
        sources: Sequence[CubeSource],
        *,
        tile: int,
        stats: dict[str, Any],
        sensors: list[str],
        geo_octaves: int,
        tiles_per_area: float = 4.0,
        capacity: int = 20000,
        cloud_weight: float = 0.1,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.sources = list(sources)
        self.tile = tile
        self.stats = stats
        self.sensor_index = {s: i for i, s in enumerate(sensors)}
        self.geo_octaves = geo_octaves
        self.tiles_per_area = tiles_per_area
        self.capacity = capacity
        self.cloud_weight = cloud_weight
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        self.n_bands = max(s.n_bands for s in self.sources)
        self._stream = self._images(np.random.default_rng([seed, 1]))
        self._fill()

    def _images(self, order: np.random.Generator) -> Iterator[tuple[int, int]]:
        """Endless stream of (source, time) pairs, reshuffled each pass by its own generator
        (so the images a refresh reads depend only on how many were read before)."""
        pairs = [(s, i) for s, src in enumerate(self.sources) for i in range(src.n_times)]
        while True:
            for j in order.permutation(len(pairs)):
                yield pairs[j]

    def _cut(self, s: int, i: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        src, t, b = self.sources[s], self.tile, self.n_bands
        phys, clear = src.image(i)
        wl, bw = src.band_meta(i)
        mean, std = band_stats(self.stats, np.array([src.meta["sensor"][i]]), wl)
        norm = normalise(phys[None], mean, std)[0]  # (B_src, y, x)
        oy, ox = src.origins()
        n = max(1, round(self.tiles_per_area * src.ny * src.nx / t**2))
        iy = rng.integers(len(oy), size=n)
        ix = rng.integers(len(ox), size=n)
        pad_y = oy[-1] + t - src.ny
        pad_x = ox[-1] + t - src.nx
        widths = ((0, 0), (0, max(pad_y, 0)), (0, max(pad_x, 0)))
        inside = np.ones((src.ny, src.nx), bool)
        norm_p = np.pad(norm, widths, mode="edge")
        clear_p = np.pad(clear, widths[1:], mode="edge")
        inside_p = np.pad(inside, widths[1:], constant_values=False)
        x = np.zeros((n, b, t, t), np.float32)
        data = np.zeros((n, b, t, t), bool)
        clr = np.zeros((n, t, t), bool)
        for j, (a, c) in enumerate(zip(iy, ix)):
            y0, x0 = oy[a], ox[c]
            win = norm_p[:, y0 : y0 + t, x0 : x0 + t]
            ok = np.isfinite(win) & inside_p[None, y0 : y0 + t, x0 : x0 + t]
            x[j, : src.n_bands] = np.where(ok, win, 0.0)
            data[j, : src.n_bands] = ok
            clr[j] = clear_p[y0 : y0 + t, x0 : x0 + t]
        lat = src.meta["lat"][iy, ix]
        lon = src.meta["lon"][iy, ix]
        wl_p = np.full(b, 500.0)
        bw_p = np.full(b, 25.0)
        wl_p[: src.n_bands], bw_p[: src.n_bands] = wl, bw
        when = np.repeat(src.meta["time"][i : i + 1], n)
        sensor = self.sensor_index.get(str(src.meta["sensor"][i]), 0)
        return {
            "x": x.astype(np.float16),
            "data": data,
            "clear": clr,
            "wavelength": np.tile(wl_p, (n, 1)).astype(np.float32),
            "bandwidth": np.tile(bw_p, (n, 1)).astype(np.float32),
            "geo": geo_features(lat, lon, self.geo_octaves),
            "date": date_features(when),
            "sensor": np.full(n, sensor, np.int64),
            "source": np.full(n, s, np.int64),
        }

    def _fill(self) -> None:
        """Stream images until the bank holds ``capacity`` tiles or every image was read once."""
        n_images = sum(src.n_times for src in self.sources)
        parts: list[dict[str, np.ndarray]] = []
        count = 0
        for _ in range(n_images):
            part = self._cut(*next(self._stream), self.rng)
            parts.append(part)
            count += len(part["x"])
            if count >= self.capacity:
                break
        merged = {k: np.concatenate([p[k] for p in parts])[: self.capacity] for k in parts[0]}
        self.tensors = {k: torch.from_numpy(v).to(self.device) for k, v in merged.items()}
        self._index_sources()

    def _index_sources(self) -> None:
        src = self.tensors["source"].cpu().numpy()
        self.by_source = [np.flatnonzero(src == s) for s in range(len(self.sources))]
        self.by_source = [ix for ix in self.by_source if ix.size]

    def refresh(self, n_images: int = 1, rng: np.random.Generator | None = None) -> None:
        """Replace random tiles with tiles cut from the next ``n_images`` images of the stream;
        ``rng`` draws the windows and the slots (the bank's own generator by default)."""
        rng = self.rng if rng is None else rng
        for _ in range(n_images):
            part = self._cut(*next(self._stream), rng)
            slots = rng.choice(len(self.tensors["x"]), size=len(part["x"]), replace=False)
            slot_t = torch.from_numpy(slots).to(self.device)
            for k, v in part.items():
                self.tensors[k][slot_t] = torch.from_numpy(v).to(self.device)
        self._index_sources()

    def __len__(self) -> int:
        return len(self.tensors["x"])

    def sample(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Indices of n tiles: a uniform source, then a uniform tile of that source (drawn with
        ``rng``, the bank's own generator by default)."""
        rng = self.rng if rng is None else rng
        which = rng.integers(len(self.by_source), size=n)
        return np.array([self.by_source[w][rng.integers(self.by_source[w].size)] for w in which])

    def batch(self, index: np.ndarray | torch.Tensor) -> Batch:
        """Gather tiles by bank index into a :class:`Batch`."""
        ix = torch.as_tensor(index, device=self.device)
        g = {k: v[ix] for k, v in self.tensors.items()}
        data = g["data"].float()
        clear = g["clear"].float()[:, None]
        weight = data * (clear + (1.0 - clear) * self.cloud_weight)
        return Batch(
            x=g["x"].float(), data=data, weight=weight, wavelength=g["wavelength"],
            bandwidth=g["bandwidth"], geo=g["geo"], date=g["date"], sensor=g["sensor"],
        )

    def all_batches(self, size: int) -> Iterator[Batch]:
        """Every tile of the bank once, in order, in batches of ``size``."""
        for s in range(0, len(self), size):
            yield self.batch(np.arange(s, min(s + size, len(self))))
