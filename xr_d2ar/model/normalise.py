"""Per-(sensor, band) normalisation of physical values, stored in the prior's JSON config.

``stats`` (JSON)::

    {"default": {"mean": m, "std": s},                       # any reflectance sensor not seen
     "sensors": {"Sentinel-2A": {"wavelength": [...], "mean": [...], "std": [...]}, ...}}

A band of a known sensor takes the stats of that sensor's band with the nearest centre wavelength
when it is within 5 % of it, else the sensor's average; an unknown sensor takes ``default`` (so its
values must be reflectance in [0, 1]; DN cubes need a sensor the prior was trained on).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["band_stats", "denormalise", "fit_stats", "normalise"]


def band_stats(
    stats: dict[str, Any], sensor: np.ndarray, wavelength: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (N, B) float32 for tiles of ``sensor`` (N,) and bands of ``wavelength`` (B,) nm."""
    sensor = np.asarray(sensor).astype(str).reshape(-1)
    wl = np.asarray(wavelength, np.float64).reshape(-1)
    mean = np.empty((len(sensor), len(wl)), np.float32)
    std = np.empty_like(mean)
    for name in np.unique(sensor):
        rows = sensor == name
        entry = stats["sensors"].get(str(name))
        if entry is None:
            m = np.full(len(wl), stats["default"]["mean"])
            s = np.full(len(wl), stats["default"]["std"])
        else:
            known = np.asarray(entry["wavelength"], np.float64)
            near = np.abs(known[None, :] - wl[:, None]).argmin(axis=1)  # (B,)
            close = np.abs(known[near] - wl) <= 0.05 * wl
            m = np.where(close, np.asarray(entry["mean"])[near], np.mean(entry["mean"]))
            s = np.where(close, np.asarray(entry["std"])[near], np.mean(entry["std"]))
        mean[rows], std[rows] = m, s
    return mean, std


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """x (N, B, H, W) physical -> (x - mean) / std, with mean/std (N, B)."""
    return (x - mean[:, :, None, None]) / std[:, :, None, None]


def denormalise(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalise`."""
    return y * std[:, :, None, None] + mean[:, :, None, None]


def fit_stats(samples: dict[str, dict[float, list[np.ndarray]]], *, reflectance_sensors: set[str]) -> dict[str, Any]:
    """Fit stats from valid physical values: ``samples[sensor][wavelength] = [1-D arrays]``.

    ``default`` pools every band of ``reflectance_sensors`` (not DN sensors).
    """
    out: dict[str, Any] = {"sensors": {}}
    pooled: list[np.ndarray] = []
    for sensor, per_band in sorted(samples.items()):
        wls = sorted(per_band)
        means, stds = [], []
        for wl in wls:
            values = np.concatenate(per_band[wl]).astype(np.float64)
            values = values[np.isfinite(values)]
            means.append(float(values.mean()) if values.size else 0.0)
            stds.append(float(max(values.std(), 1e-3 * max(abs(means[-1]), 1.0))) if values.size else 1.0)
            if sensor in reflectance_sensors:
                pooled.append(values)
        out["sensors"][sensor] = {"wavelength": [float(w) for w in wls], "mean": means, "std": stds}
    allv = np.concatenate(pooled) if pooled else np.array([0.1, 0.3])
    out["default"] = {"mean": float(allv.mean()), "std": float(max(allv.std(), 1e-3))}
    return out
