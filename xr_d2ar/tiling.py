"""Tile planning: square tiles over the (y, x) grid of a cube, padded at the far edges.

A grid of ``n_ty x n_tx`` tiles of ``tile`` pixels covers an image of ``ny x nx`` pixels; the last
row/column of tiles is padded by edge replication and the padding is cropped on the way back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from xr_d2ar.geo import lonlat

__all__ = ["TileGrid", "flatten_tiles", "unflatten_tiles"]


@dataclass(frozen=True)
class TileGrid:
    """Square tiles over an ``ny x nx`` image.

    Attributes
    ----------
    ny, nx : int
        Image size in pixels.
    tile : int
        Tile side in pixels.
    """

    ny: int
    nx: int
    tile: int

    def __post_init__(self) -> None:
        for name in ("ny", "nx", "tile"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"TileGrid.{name} must be a positive int. Got {value!r} instead.")

    @classmethod
    def for_shape(cls, ny: int, nx: int, tile: int) -> TileGrid:
        """Grid for an image of ``ny x nx`` pixels and tiles of ``tile`` pixels."""
        return cls(int(ny), int(nx), int(tile))

    @property
    def n_ty(self) -> int:
        """Number of tile rows."""
        return -(-self.ny // self.tile)

    @property
    def n_tx(self) -> int:
        """Number of tile columns."""
        return -(-self.nx // self.tile)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_ty, n_tx)``."""
        return self.n_ty, self.n_tx

    def to_tiles(self, arr: np.ndarray) -> np.ndarray:
        """Cut ``arr (..., ny, nx)`` into tiles ``(..., n_ty, n_tx, tile, tile)`` (edge-padded).

        NaN and nodata are passed through; padding replicates the last row/column.
        """
        arr = np.asarray(arr)
        if arr.shape[-2:] != (self.ny, self.nx):
            raise ValueError(
                f"Expected an array ending in ({self.ny}, {self.nx}). Got shape {arr.shape} instead."
            )
        t = self.tile
        pad_y, pad_x = self.n_ty * t - self.ny, self.n_tx * t - self.nx
        widths = [(0, 0)] * (arr.ndim - 2) + [(0, pad_y), (0, pad_x)]
        padded = np.pad(arr, widths, mode="edge") if (pad_y or pad_x) else arr
        lead = arr.shape[:-2]
        tiles = padded.reshape(*lead, self.n_ty, t, self.n_tx, t)
        k = len(lead)
        order = (*range(k), k, k + 2, k + 1, k + 3)
        return np.ascontiguousarray(tiles.transpose(order))  # (..., n_ty, n_tx, t, t)

    def from_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_tiles`: ``(..., n_ty, n_tx, tile, tile)`` -> ``(..., ny, nx)``."""
        tiles = np.asarray(tiles)
        t = self.tile
        if tiles.shape[-4:] != (self.n_ty, self.n_tx, t, t):
            raise ValueError(
                f"Expected tiles ending in ({self.n_ty}, {self.n_tx}, {t}, {t}). "
                f"Got shape {tiles.shape} instead."
            )
        lead = tiles.shape[:-4]
        k = len(lead)
        order = (*range(k), k, k + 2, k + 1, k + 3)
        image = tiles.transpose(order).reshape(*lead, self.n_ty * t, self.n_tx * t)
        return image[..., : self.ny, : self.nx]

    def centre_xy(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Projected centre ``(cx, cy)`` of every tile, each ``(n_ty, n_tx)``, from pixel-centre coords.

        Tiles that reach past the image continue its regular pixel spacing.
        """
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        dx = x[1] - x[0] if x.size > 1 else 1.0
        dy = y[1] - y[0] if y.size > 1 else -1.0
        half = (self.tile - 1) / 2.0
        cx = x[0] + (np.arange(self.n_tx) * self.tile + half) * dx
        cy = y[0] + (np.arange(self.n_ty) * self.tile + half) * dy
        gx, gy = np.meshgrid(cx, cy)
        return gx, gy

    def centres(self, ds: xr.Dataset | xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude (degrees) of every tile centre, each ``(n_ty, n_tx)``."""
        cx, cy = self.centre_xy(ds["x"].values, ds["y"].values)
        return lonlat(ds, cy, cx)


def flatten_tiles(tiles: np.ndarray) -> np.ndarray:
    """``(nt, B, R, C, T, T)`` -> ``(nt * R * C, B, T, T)``: one row per tile, (time, row, col) order.

    The order the model's ``encode_tiles``/``decode_tiles`` and the per-tile conditioning use.
    """
    nt, n_bands, rows, cols, t, t2 = tiles.shape
    return tiles.transpose(0, 2, 3, 1, 4, 5).reshape(nt * rows * cols, n_bands, t, t2)


def unflatten_tiles(flat: np.ndarray, nt: int, rows: int, cols: int) -> np.ndarray:
    """Inverse of :func:`flatten_tiles`: ``(nt * R * C, B, T, T)`` -> ``(nt, B, R, C, T, T)`` (a view)."""
    return flat.reshape(nt, rows, cols, *flat.shape[1:]).transpose(0, 3, 1, 2, 4, 5)
