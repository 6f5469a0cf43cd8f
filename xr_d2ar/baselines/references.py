"""Trivial references every learned codec must clearly beat: per-image mean and climatology."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from xr_d2ar.baselines._base import BaselineCodec, pack, stored_values, to_stored, unpack
from xr_d2ar.errors import CubeValidationError

__all__ = ["Climatology", "ImageMean"]


def _has_data(ds: xr.Dataset, values: np.ndarray, *, clear_only: bool) -> np.ndarray:
    """True where a stored value (``values`` as float) is data: finite and not the fill value.

    With ``clear_only``, also where the cube's ``valid`` mask (if any) says the pixel is clear.
    """
    fill = ds["reflectance"].attrs.get("_FillValue")
    ok = np.isfinite(values)
    if fill is not None and not np.isnan(fill):
        ok &= values != fill
    if clear_only and "valid" in ds.data_vars:
        clear = ds["valid"].transpose("time", "y", "x").values.astype(bool)  # (T, H, W)
        ok &= clear.reshape(clear.shape[0], 1, *clear.shape[1:])
    return ok


@dataclass(frozen=True)
class ImageMean(BaselineCodec):
    """Each (time, band) image decoded as the constant mean of its valid pixels.

    The payload holds one stored-dtype value per image (the fill value for an all-nodata image).
    """

    name = "image-mean"
    layout = "one mean per (time, band) image, in the stored dtype"

    def compress(
        self, ds: xr.Dataset, param: float | None = None, *, history: xr.Dataset | None = None
    ) -> bytes:
        arr = stored_values(ds)
        values = arr.astype(np.float64)
        ok = _has_data(ds, values, clear_only=False).reshape(arr.shape[0] * arr.shape[1], -1)
        flat = values.reshape(ok.shape)  # (T*B, H*W)
        count = ok.sum(axis=1)
        total = np.where(ok, flat, 0.0).sum(axis=1)
        fill = ds["reflectance"].attrs.get("_FillValue")
        empty = 0.0 if fill is None or np.isnan(fill) else float(fill)
        means = np.where(count > 0, total / np.maximum(count, 1), empty)
        stored = to_stored(means, arr.dtype).astype(arr.dtype.newbyteorder("<"))
        return pack(arr.shape, arr.dtype, [stored.tobytes()])

    def decompress(
        self, payload: bytes, *, like: xr.Dataset, history: xr.Dataset | None = None
    ) -> np.ndarray:
        shape, dtype, (stream,) = unpack(payload)
        means = np.frombuffer(stream, dtype=dtype).reshape(shape[:2])
        return np.ascontiguousarray(np.broadcast_to(means[:, :, None, None], shape))


@dataclass(frozen=True)
class Climatology(BaselineCodec):
    """Zero tokens: each pixel and band decoded as the mean of the place's earlier observations.

    For a target date, the history's clear observations (not nodata; ``valid == 1`` where the cube
    has a ``valid`` mask) within ``window_days`` of the same day of year are averaged per pixel and
    band. Where a pixel has none, all its clear history is used; where it has none at all, the
    band's mean over the history. The payload is the container header only (shape and dtype).

    Parameters
    ----------
    window_days : float
        Half-width of the day-of-year window (circular), in days.
    """

    window_days: float = 30.0

    name = "climatology"
    layout = "nothing coded (header only); decoded from the history of the same grid"
    needs_history = True

    def __post_init__(self) -> None:
        if not 0 < float(self.window_days) <= 183:
            raise ValueError(
                f"window_days must be in (0, 183]. Got {self.window_days!r} instead."
            )

    def compress(
        self, ds: xr.Dataset, param: float | None = None, *, history: xr.Dataset | None = None
    ) -> bytes:
        self._check_history(ds, history)
        arr = stored_values(ds)
        return pack(arr.shape, arr.dtype, [])

    def decompress(
        self, payload: bytes, *, like: xr.Dataset, history: xr.Dataset | None = None
    ) -> np.ndarray:
        history = self._check_history(like, history)
        shape, dtype, _ = unpack(payload)
        hist = stored_values(history).astype(np.float64)  # (Th, B, H, W)
        ok = _has_data(history, hist, clear_only=True)
        hist = np.where(ok, hist, 0.0)
        doy_h = history["time"].dt.dayofyear.values.astype(np.float64)
        all_sum, all_n = hist.sum(axis=0), ok.sum(axis=0)  # (B, H, W)
        band_n = all_n.sum(axis=(1, 2))
        band_mean = all_sum.sum(axis=(1, 2)) / np.maximum(band_n, 1)  # (B,)
        fallback = np.where(all_n > 0, all_sum / np.maximum(all_n, 1), band_mean[:, None, None])
        out = np.empty(shape, dtype=dtype)
        for i, doy in enumerate(like["time"].dt.dayofyear.values):
            gap = np.abs(doy_h - doy)
            near = np.minimum(gap, 365.25 - gap) <= self.window_days
            s, n = hist[near].sum(axis=0), ok[near].sum(axis=0)
            out[i] = to_stored(np.where(n > 0, s / np.maximum(n, 1), fallback), dtype)
        return out

    @staticmethod
    def _check_history(ds: xr.Dataset, history: xr.Dataset | None) -> xr.Dataset:
        if history is None or history.sizes.get("time", 0) == 0:
            raise CubeValidationError(
                "The climatology reference needs the place's earlier observations. Got no history "
                "instead. Pass history=train where train, held_out = "
                "xr_d2ar.datasets.split_time(ds).",
                missing="history",
            )
        same_grid = (
            history.sizes.get("y") == ds.sizes.get("y")
            and history.sizes.get("x") == ds.sizes.get("x")
            and list(history["band"].values) == list(ds["band"].values)
        )
        if not same_grid:
            raise CubeValidationError(
                "history must cover the same grid and bands as the cube. Got history "
                f"{dict(history.sizes)} bands {list(history['band'].values)} for cube "
                f"{dict(ds.sizes)} bands {list(ds['band'].values)} instead. Select the same "
                "place and bands (datasets.split_time keeps them).",
                missing="history",
            )
        if history["time"].values.max() >= ds["time"].values.min():
            raise CubeValidationError(
                "history must precede the cube's dates (a reference may not peek at the data). "
                f"Got history up to {history['time'].values.max()} for a cube starting "
                f"{ds['time'].values.min()} instead. Use datasets.split_time(ds).",
                missing="history",
            )
        return history
