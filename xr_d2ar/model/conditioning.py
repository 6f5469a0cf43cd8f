"""Conditioning of the flow prior: flow time, place, date and sensor -> one vector per tile.

Features (computed in float64, returned float32; the C runtime may compute them in Python):

- place: the tile centre on the unit sphere ``(x, y, z)``, and ``sin``/``cos`` of ``2**k * (x, y, z)``
  for ``k = 0 .. geo_octaves-1`` -> ``3 + 6 * geo_octaves`` values (finest period ~ 2**(1-octaves) pi rad).
- date: ``sin``/``cos`` of ``2 pi j doy / 365.25`` for ``j = 1, 2`` and ``(decimal year - 2015) / 10``
  -> 5 values.
- flow time ``t`` in [0, 1]: :func:`layers.sinusoidal` of ``1000 t`` (256 values).
- sensor: an index into a learned table (0 = unknown sensor).

``Conditioner`` maps each through ``Linear -> SiLU -> Linear`` (the sensor through its table) and sums:
``c = mlp_t(t) + mlp_geo(geo) + mlp_date(date) + table[sensor]`` (N, D).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from xr_d2ar.model.layers import sinusoidal

__all__ = ["N_DATE_FEATURES", "Conditioner", "date_features", "geo_features", "n_geo_features"]

N_DATE_FEATURES = 5
_T_FEATURES = 256


def n_geo_features(octaves: int) -> int:
    """Width of :func:`geo_features` for ``octaves``."""
    return 3 + 6 * octaves


def geo_features(lat: np.ndarray, lon: np.ndarray, octaves: int) -> np.ndarray:
    """Fourier features of places: lat, lon (N,) degrees -> (N, 3 + 6 * octaves) float32."""
    la = np.deg2rad(np.asarray(lat, np.float64))
    lo = np.deg2rad(np.asarray(lon, np.float64))
    xyz = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)
    args = xyz[:, None, :] * (2.0 ** np.arange(octaves))[None, :, None]  # (N, octaves, 3)
    feats = [xyz, np.sin(args).reshape(len(xyz), -1), np.cos(args).reshape(len(xyz), -1)]
    return np.concatenate(feats, axis=-1).astype(np.float32)


def date_features(time: np.ndarray) -> np.ndarray:
    """Seasonal and yearly features: time (N,) datetime64 -> (N, 5) float32."""
    t = np.asarray(time).astype("datetime64[s]")
    year = t.astype("datetime64[Y]")
    doy = (t - year).astype(np.float64) / 86400.0  # days since 1 Jan (0-based, fractional)
    decimal_year = year.astype(np.float64) + 1970.0 + doy / 365.25
    ang = 2.0 * np.pi * doy / 365.25
    feats = [np.sin(ang), np.cos(ang), np.sin(2 * ang), np.cos(2 * ang), (decimal_year - 2015.0) / 10.0]
    return np.stack(feats, axis=-1).astype(np.float32)


class _Mlp2(nn.Module):
    def __init__(self, n_in: int, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_in, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1(x)))


class Conditioner(nn.Module):
    """(t, geo, date, sensor) -> conditioning vector (N, dim)."""

    def __init__(self, dim: int, geo_octaves: int, n_sensors: int) -> None:
        super().__init__()
        self.t_mlp = _Mlp2(_T_FEATURES, dim)
        self.geo_mlp = _Mlp2(n_geo_features(geo_octaves), dim)
        self.date_mlp = _Mlp2(N_DATE_FEATURES, dim)
        self.sensor = nn.Embedding(n_sensors, dim)

    def forward(
        self, t: torch.Tensor, geo: torch.Tensor, date: torch.Tensor, sensor: torch.Tensor
    ) -> torch.Tensor:
        """t (N,) in [0, 1]; geo (N, G); date (N, 5); sensor (N,) int64 -> (N, dim)."""
        c = self.t_mlp(sinusoidal(1000.0 * t, _T_FEATURES).to(geo.dtype))
        return c + self.geo_mlp(geo) + self.date_mlp(date) + self.sensor(sensor)
