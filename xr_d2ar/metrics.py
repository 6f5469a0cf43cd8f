"""Nodata-aware quality metrics on physical values (reflectance, or DN for DN cubes).

Every metric compares an ``original`` with a ``reconstruction`` of the same shape:

* numpy arrays shaped ``(..., band, y, x)`` (a 2-D ``(y, x)`` array is one band) holding physical
  values, NaN where the original has no data; or
* :class:`xarray.DataArray` with dims ``band``, ``y``, ``x`` (plus e.g. ``time``): canonical stored
  integers (attrs ``scale_factor``/``add_offset``/``_FillValue``) are turned into physical values,
  the original's ``_FillValue`` pixels become nodata, the band wavelengths come from the
  ``wavelength`` coordinate.

Pixels where the original is NaN/nodata, or where ``mask`` is False, are left out of every metric.
A reconstruction must be finite wherever the original is valid.

Data range (PSNR, SSIM): by default the robust peak-to-peak of the valid original values,
``percentile 99.9 - percentile 0.1``: per band for per-band PSNR and SSIM, pooled over all bands
for the overall PSNR. :class:`Scorer` / :func:`evaluate` report the ranges they used.

Examples
--------
>>> import numpy as np
>>> from xr_d2ar import metrics
>>> a = np.zeros((2, 8, 8)); b = a + 0.1
>>> round(metrics.psnr(a, b, data_range=1.0), 6)
20.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from xr_d2ar.errors import CubeValidationError, UnknownBandError

__all__ = [
    "Scorer",
    "classification_utility",
    "data_range",
    "evaluate",
    "find_red_nir",
    "max_abs_error",
    "ndvi",
    "ndvi_mae",
    "psnr",
    "psnr_per_band",
    "spectral_angle",
    "ssim",
]

ArrayLike = np.ndarray | xr.DataArray

#: Percentiles of the valid original values whose difference is the default data range.
RANGE_PERCENTILES = (0.1, 99.9)
#: Windows (nm) where the red and near-infrared bands of NDVI are searched; preferred centres.
RED_WINDOW, RED_CENTRE = (620.0, 700.0), 665.0
NIR_WINDOW, NIR_CENTRE = (760.0, 900.0), 842.0
SSIM_WINDOW = 7


# --------------------------------------------------------------------------- input handling


@dataclass(frozen=True)
class _Original:
    """The original as float64 ``(n, band, y, x)``, NaN where invalid, with its metadata."""

    values: np.ndarray  # (N, B, H, W)
    valid: np.ndarray  # (N, B, H, W) bool
    shape: tuple[int, ...]  # shape as given (before flattening leading dims)
    bands: list[str]
    wavelength: np.ndarray | None  # (B,) nm
    is_dataarray: bool
    dims: tuple[str, ...]


def _physical(da: xr.DataArray, *, mask_fill: bool) -> xr.DataArray:
    """Stored canonical values -> physical float; fill values become NaN only if ``mask_fill``."""
    from xr_d2ar.datasets import to_reflectance

    if not mask_fill:
        da = da.copy(deep=False)
        da.attrs = {k: v for k, v in da.attrs.items() if k != "_FillValue"}
    return to_reflectance(da)


def _to_nbhw(values: np.ndarray) -> np.ndarray:
    if values.ndim < 2:
        raise CubeValidationError(
            f"Metrics need at least the two image dims (y, x). Got shape {values.shape} instead."
        )
    if values.ndim == 2:
        values = values[None]
    return values.reshape((-1,) + values.shape[-3:])


def _band_yx_last(da: xr.DataArray, what: str) -> xr.DataArray:
    missing = [d for d in ("band", "y", "x") if d not in da.dims]
    if missing:
        raise CubeValidationError(
            f"The {what} needs dims 'band', 'y', 'x'. Got dims {da.dims} instead. Pass a "
            "canonical cube's reflectance (ds.reflectance) or a numpy array (..., band, y, x).",
            missing="/".join(missing),
        )
    return da.transpose(..., "band", "y", "x")


def _original(
    original: ArrayLike, mask: ArrayLike | None, wavelength: Sequence[float] | None
) -> _Original:
    bands: list[str] | None = None
    wl = None if wavelength is None else np.asarray(wavelength, dtype=np.float64)
    dims: tuple[str, ...] = ()
    is_da = isinstance(original, xr.DataArray)
    if is_da:
        original = _band_yx_last(original, "original")
        dims = tuple(str(d) for d in original.dims)
        bands = [str(b) for b in original["band"].values]
        if wl is None and "wavelength" in original.coords:
            wl = np.asarray(original["wavelength"].values, dtype=np.float64)
        if isinstance(mask, xr.DataArray):
            mask = mask.broadcast_like(original).transpose(*original.dims)
        original = _physical(original, mask_fill=True)
    values = np.asarray(original, dtype=np.float64)
    valid = np.isfinite(values)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        try:
            valid &= np.broadcast_to(m, values.shape)
        except ValueError:
            raise CubeValidationError(
                f"mask must broadcast to the data shape {values.shape}. Got shape {m.shape} "
                "instead. For a per-pixel (time, y, x) mask of a (time, band, y, x) array use "
                "mask[:, None]."
            ) from None
    shape = values.shape
    values, valid = _to_nbhw(np.where(valid, values, np.nan)), _to_nbhw(valid)
    n_bands = values.shape[1]
    if wl is not None and wl.shape != (n_bands,):
        raise UnknownBandError(
            f"wavelength needs one value (nm) per band ({n_bands} bands). Got shape {wl.shape} "
            "instead. Pass one centre wavelength per band."
        )
    names = bands or [str(i) for i in range(n_bands)]
    return _Original(values, valid, shape, names, wl, is_da, dims)


def _reconstruction(ref: _Original, reconstruction: ArrayLike) -> np.ndarray:
    """The reconstruction as float64 ``(n, band, y, x)``, checked against the original."""
    if isinstance(reconstruction, xr.DataArray):
        rec_da = _band_yx_last(reconstruction, "reconstruction")
        if ref.is_dataarray:
            rec_da = rec_da.transpose(*ref.dims)
        reconstruction = _physical(rec_da, mask_fill=False)
    rec = np.asarray(reconstruction, dtype=np.float64)
    if rec.shape != ref.shape:
        raise CubeValidationError(
            f"original and reconstruction must have the same shape. Got {ref.shape} and "
            f"{rec.shape} instead. Reconstruct the same selection you compare against."
        )
    rec = _to_nbhw(rec)
    bad = int(np.count_nonzero(ref.valid & ~np.isfinite(rec)))
    if bad:
        raise CubeValidationError(
            f"The reconstruction is NaN/inf at {bad} values where the original is valid. "
            "Decode to finite values (nodata only where the original has nodata)."
        )
    return rec


def _range_of(values: np.ndarray) -> float:
    """Robust peak-to-peak of finite ``values``; the full range if that is 0; 1.0 if constant."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return float("nan")
    lo, hi = np.percentile(v, RANGE_PERCENTILES)
    if hi > lo:
        return float(hi - lo)
    full = float(v.max() - v.min())
    return full if full > 0 else 1.0


def _band_ranges(ref: _Original, data_range: float | Sequence[float] | None) -> np.ndarray:
    n_bands = ref.values.shape[1]
    if data_range is None:
        return np.array([_range_of(ref.values[:, b]) for b in range(n_bands)])
    r = np.broadcast_to(np.asarray(data_range, dtype=np.float64), (n_bands,)).copy()
    if np.any(~(r > 0)):
        raise ValueError(f"data_range must be positive. Got {data_range!r} instead.")
    return r


# --------------------------------------------------------------------------- metric kernels
# Each takes the prepared original and the reconstruction (N, B, H, W).


def _psnr(err: np.ndarray, valid: np.ndarray, rng: float) -> float:
    n = np.count_nonzero(valid)
    if n == 0:
        return float("nan")
    mse = float(np.sum(np.square(err[valid])) / n)
    return float("inf") if mse == 0 else float(10.0 * np.log10(rng**2 / mse))


def _psnr_bands(ref: _Original, rec: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    err = rec - ref.values
    return np.array([_psnr(err[:, b], ref.valid[:, b], ranges[b]) for b in range(len(ranges))])


def _max_abs(ref: _Original, rec: np.ndarray) -> float:
    if not ref.valid.any():
        return float("nan")
    return float(np.max(np.abs(rec - ref.values)[ref.valid]))


def _ssim_image(o: np.ndarray, r: np.ndarray, valid: np.ndarray, rng: float) -> float:
    """Mean SSIM of one 2-D image over valid pixels away from the border (as scikit-image)."""
    from skimage.metrics import structural_similarity

    fill = float(np.mean(o[valid]))
    o, r = np.where(valid, o, fill), np.where(valid, r, fill)
    _, smap = structural_similarity(o, r, data_range=rng, win_size=SSIM_WINDOW, full=True)
    pad = (SSIM_WINDOW - 1) // 2
    inner = (slice(pad, o.shape[0] - pad), slice(pad, o.shape[1] - pad))
    vals = smap[inner][valid[inner]]
    return float(vals.mean()) if vals.size else float("nan")


def _ssim_bands(ref: _Original, rec: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    n, n_bands, h, w = ref.values.shape
    if min(h, w) < SSIM_WINDOW:
        raise CubeValidationError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels. Got {h}x{w} "
            "instead. Compare a larger crop."
        )
    out = np.full(n_bands, np.nan)
    for b in range(n_bands):
        scores = [
            _ssim_image(ref.values[i, b], rec[i, b], ref.valid[i, b], ranges[b])
            for i in range(n)
            if ref.valid[i, b].any()
        ]
        scores = [s for s in scores if np.isfinite(s)]
        if scores:
            out[b] = float(np.mean(scores))
    return out


def _angles(ref: _Original, rec: np.ndarray) -> np.ndarray:
    """Spectral angle (degrees) of every pixel valid in all bands with a non-zero original.

    A reconstructed spectrum of all zeros has no direction and counts as 90 degrees.
    """
    if ref.values.shape[1] < 2:
        raise CubeValidationError(
            f"The spectral angle needs at least 2 bands. Got {ref.values.shape[1]} instead."
        )
    ok = ref.valid.all(axis=1)  # (N, H, W)
    o = np.moveaxis(ref.values, 1, -1)[ok]  # (P, B)
    r = np.moveaxis(rec, 1, -1)[ok]  # (P, B)
    no, nr = np.linalg.norm(o, axis=1), np.linalg.norm(r, axis=1)
    keep = no > 0
    o, r, no, nr = o[keep], r[keep], no[keep], nr[keep]
    zero = nr == 0
    u, v = o / no[:, None], r / np.where(zero, 1.0, nr)[:, None]
    # 2 atan(|u - v| / |u + v|) is accurate for tiny and large angles alike (unlike acos(u.v))
    ang = 2.0 * np.arctan2(np.linalg.norm(u - v, axis=1), np.linalg.norm(u + v, axis=1))
    return np.degrees(np.where(zero, np.pi / 2, ang))


def ndvi(x: ArrayLike, red: int, nir: int) -> np.ndarray:
    """NDVI ``(NIR - red) / (NIR + red)`` clipped to [-1, 1]; 0 where NIR + red is 0, NaN stays NaN.

    ``x`` is ``(..., band, y, x)`` physical values; returns ``(..., y, x)`` float64. Band indices
    from :func:`find_red_nir`.
    """
    x = np.asarray(x, dtype=np.float64)
    r, n = x[..., red, :, :], x[..., nir, :, :]
    den = n + r
    safe = np.where(den != 0, den, 1.0)
    return np.clip(np.where(den != 0, (n - r) / safe, 0.0), -1.0, 1.0)


def _ndvi_mae(ref: _Original, rec: np.ndarray, red: int, nir: int) -> float:
    ok = ref.valid[:, red] & ref.valid[:, nir]
    if not ok.any():
        return float("nan")
    diff = np.abs(ndvi(rec, red, nir) - ndvi(np.nan_to_num(ref.values), red, nir))
    return float(diff[ok].mean())


# --------------------------------------------------------------------------- public metrics


def data_range(
    original: ArrayLike, *, mask: ArrayLike | None = None, per_band: bool = False
) -> float | np.ndarray:
    """Default data range: percentile 99.9 minus percentile 0.1 of the valid original values.

    Parameters
    ----------
    original : ndarray or DataArray
        ``(..., band, y, x)``; see the module docstring.
    mask : array of bool, optional
        True where pixels count; broadcast to the data shape.
    per_band : bool
        One range per band (shape ``(band,)``) instead of the range pooled over all bands.

    Returns
    -------
    float or ndarray
        In the physical unit of the data (the full range where the robust one is 0).
    """
    ref = _original(original, mask, None)
    return _band_ranges(ref, None) if per_band else _range_of(ref.values)


def psnr(
    original: ArrayLike,
    reconstruction: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    data_range: float | None = None,
) -> float:
    """Peak signal-to-noise ratio over all valid values, in dB (``inf`` when identical).

    ``10 log10(R**2 / MSE)`` with ``R = data_range``, by default the robust range pooled over all
    bands (:func:`data_range`).
    """
    ref = _original(original, mask, None)
    rng = _range_of(ref.values) if data_range is None else float(data_range)
    return _psnr(_reconstruction(ref, reconstruction) - ref.values, ref.valid, rng)


def psnr_per_band(
    original: ArrayLike,
    reconstruction: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    data_range: float | Sequence[float] | None = None,
) -> np.ndarray:
    """PSNR of each band in dB, shape ``(band,)``; ``data_range``: one value or one per band."""
    ref = _original(original, mask, None)
    return _psnr_bands(ref, _reconstruction(ref, reconstruction), _band_ranges(ref, data_range))


def max_abs_error(
    original: ArrayLike, reconstruction: ArrayLike, *, mask: ArrayLike | None = None
) -> float:
    """Largest absolute difference over valid values, in the data's physical unit."""
    ref = _original(original, mask, None)
    return _max_abs(ref, _reconstruction(ref, reconstruction))


def ssim(
    original: ArrayLike,
    reconstruction: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    data_range: float | Sequence[float] | None = None,
) -> float:
    """Structural similarity averaged over bands (dimensionless, 1 when identical).

    Each 2-D ``(y, x)`` image is scored with :func:`skimage.metrics.structural_similarity`
    (7x7 uniform window, data range per band, default robust range). Invalid pixels of both images
    are set to the image's valid mean before filtering and left out of the average, as are the
    border pixels scikit-image leaves out. Images are averaged per band, then bands are averaged.
    """
    ref = _original(original, mask, None)
    rec = _reconstruction(ref, reconstruction)
    return float(np.nanmean(_ssim_bands(ref, rec, _band_ranges(ref, data_range))))


def spectral_angle(
    original: ArrayLike, reconstruction: ArrayLike, *, mask: ArrayLike | None = None
) -> float:
    """Mean spectral angle in degrees between original and reconstructed pixel spectra.

    Pixels count if valid in every band and not all zeros in the original; a reconstructed
    spectrum of all zeros has no direction and counts as 90 degrees.
    """
    ref = _original(original, mask, None)
    ang = _angles(ref, _reconstruction(ref, reconstruction))
    return float(ang.mean()) if ang.size else float("nan")


def find_red_nir(
    wavelength: Sequence[float] | None, bands: Sequence[str] | None = None
) -> tuple[int, int]:
    """Indices of the red and near-infrared bands, chosen by centre wavelength (nm).

    Red: the band in 620-700 nm nearest 665 nm. NIR: the band in 760-900 nm nearest 842 nm
    (Sentinel-2 B08, Landsat-8 B5, Landsat-5/7 B4, CBERS-4 AWFI B16).

    Raises
    ------
    UnknownBandError
        If no wavelengths are given or no band falls in one of the windows.
    """
    names = list(bands) if bands is not None else None
    if wavelength is None:
        raise UnknownBandError(
            "NDVI needs the band centre wavelengths to find red and NIR. Got none. Pass "
            "wavelength=[...] (nm, one per band) or a canonical DataArray with a 'wavelength' "
            "coordinate.",
            bands=names,
        )
    wl = np.asarray(wavelength, dtype=np.float64)

    def pick(window: tuple[float, float], centre: float, what: str) -> int:
        inside = np.flatnonzero((wl >= window[0]) & (wl <= window[1]))
        if inside.size == 0:
            raise UnknownBandError(
                f"NDVI needs a {what} band ({window[0]:.0f}-{window[1]:.0f} nm). Got bands at "
                f"{[round(float(w)) for w in wl]} nm instead. Add such a band, or leave NDVI out.",
                bands=names,
            )
        return int(inside[np.argmin(np.abs(wl[inside] - centre))])

    return pick(RED_WINDOW, RED_CENTRE, "red"), pick(NIR_WINDOW, NIR_CENTRE, "near-infrared")


def ndvi_mae(
    original: ArrayLike,
    reconstruction: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    wavelength: Sequence[float] | None = None,
) -> float:
    """Mean absolute NDVI error over pixels valid in the red and NIR bands (dimensionless).

    NDVI ``(nir - red) / (nir + red)`` is clipped to [-1, 1] (0 where the sum is 0) in both arrays.
    The bands come from :func:`find_red_nir`; ``wavelength`` (nm, one per band) overrides a
    DataArray's ``wavelength`` coordinate.
    """
    ref = _original(original, mask, wavelength)
    red, nir = find_red_nir(ref.wavelength, ref.bands)
    return _ndvi_mae(ref, _reconstruction(ref, reconstruction), red, nir)


# --------------------------------------------------------------------------- classification utility


class _PixelClassifier:
    """Random forest on per-pixel spectra of the original, with labels or k-means pseudo-labels."""

    def __init__(
        self,
        ref: _Original,
        labels: np.ndarray | None,
        *,
        n_clusters: int,
        n_train: int,
        n_eval: int,
        seed: int,
    ) -> None:
        from sklearn.cluster import KMeans
        from sklearn.ensemble import RandomForestClassifier

        n, n_bands, h, w = ref.values.shape
        ok = ref.valid.all(axis=1).reshape(-1)  # (N*H*W,)
        target = np.zeros(ok.shape, dtype=np.int64)
        self.label_source, self.note = f"kmeans(k={n_clusters})", ""
        if labels is not None:
            if labels.shape[-2:] != (h, w):
                raise CubeValidationError(
                    f"labels must be a (y, x) map of the image size {(h, w)}. Got shape "
                    f"{labels.shape} instead. Pass ds.label of the same cube selection."
                )
            lab = np.broadcast_to(labels.reshape(-1, h, w), (n, h, w)).reshape(-1)
            classes, counts = np.unique(lab[ok & (lab != 0)], return_counts=True)
            kept = classes[counts >= 10]
            if kept.size >= 2:
                self.label_source = "label"
                ok &= np.isin(lab, kept)
                target = lab.astype(np.int64)
            else:
                self.note = (
                    "labels given but fewer than 2 classes have >= 10 valid labelled pixels: "
                    "k-means pseudo-labels used instead"
                )
        pixels = np.flatnonzero(ok)
        if pixels.size < 20:
            raise CubeValidationError(
                f"Classification utility needs at least 20 pixels valid in every band. Got "
                f"{pixels.size} instead. Use a larger selection or classify=False."
            )
        pixels = np.random.default_rng(seed).permutation(pixels)
        n_tr = min(n_train, pixels.size // 2)
        self.train_idx, self.eval_idx = pixels[:n_tr], pixels[n_tr : n_tr + n_eval]
        spectra = np.moveaxis(ref.values, 1, -1).reshape(-1, n_bands)  # (N*H*W, B)
        if self.label_source != "label":
            sample = spectra[self.train_idx]
            mu, sd = sample.mean(axis=0), sample.std(axis=0) + 1e-12
            km = KMeans(n_clusters=min(n_clusters, n_tr), n_init=3, random_state=seed)
            km.fit((sample - mu) / sd)
            both = np.concatenate([self.train_idx, self.eval_idx])
            target[both] = km.predict((spectra[both] - mu) / sd)
        self.y_train, self.y_eval = target[self.train_idx], target[self.eval_idx]
        self.forest = RandomForestClassifier(
            n_estimators=60, min_samples_leaf=2, random_state=seed, n_jobs=1
        ).fit(spectra[self.train_idx], self.y_train)
        self.pred_orig = self.forest.predict(spectra[self.eval_idx])

    def score(self, rec: np.ndarray) -> dict[str, Any]:
        spectra = np.moveaxis(rec, 1, -1).reshape(-1, rec.shape[1])  # (N*H*W, B)
        pred = self.forest.predict(spectra[self.eval_idx])
        classes = np.unique(self.pred_orig)
        out: dict[str, Any] = {
            "label_source": self.label_source,
            "n_classes": int(np.unique(self.y_train).size),
            "n_train": int(self.train_idx.size),
            "n_eval": int(self.eval_idx.size),
            "agreement": float(np.mean(pred == self.pred_orig)),
            "balanced_agreement": float(
                np.mean([np.mean(pred[self.pred_orig == c] == c) for c in classes])
            ),
            "accuracy_original": float(np.mean(self.pred_orig == self.y_eval)),
            "accuracy_reconstruction": float(np.mean(pred == self.y_eval)),
        }
        if self.note:
            out["note"] = self.note
        return out


def _labels_array(labels: ArrayLike | None) -> np.ndarray | None:
    if labels is None:
        return None
    if isinstance(labels, xr.DataArray):
        labels = labels.transpose(..., "y", "x")
    return np.asarray(labels)


def classification_utility(
    original: ArrayLike,
    reconstruction: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    n_clusters: int = 8,
    n_train: int = 4000,
    n_eval: int = 20000,
    seed: int = 0,
) -> dict[str, Any]:
    """Land-cover classification utility of a reconstruction.

    A random forest (60 trees) is trained on per-pixel spectra of the original: with ``labels``
    (``(y, x)`` class codes, 0 = unlabelled) when at least two classes have 10 valid pixels,
    otherwise with k-means clusters (``n_clusters``) of the original spectra as pseudo-labels.
    Pixels valid in all bands are split (fixed ``seed``) into at most ``n_train`` training and
    ``n_eval`` evaluation pixels.

    Returns
    -------
    dict
        ``label_source`` (``"label"`` or ``"kmeans(k=K)"``); ``agreement``: fraction of evaluation
        pixels whose class predicted from the reconstruction equals the class predicted from the
        original; ``balanced_agreement``: the same averaged over those classes (a constant image
        scores about 1/classes, whatever the class sizes); ``accuracy_original`` /
        ``accuracy_reconstruction`` against the (pseudo-)labels; ``n_classes``, ``n_train``,
        ``n_eval``; ``note`` if labels were given but not usable.
    """
    ref = _original(original, mask, None)
    clf = _PixelClassifier(
        ref, _labels_array(labels), n_clusters=n_clusters, n_train=n_train, n_eval=n_eval, seed=seed
    )
    return clf.score(_reconstruction(ref, reconstruction))


# --------------------------------------------------------------------------- all at once


class Scorer:
    """Every metric of one original, prepared once and applied to many reconstructions.

    Data ranges, band choice and the pixel classifier are set up in the constructor, so scoring a
    reconstruction costs only the comparisons (the bench harness scores dozens per cube).

    Parameters
    ----------
    original : ndarray or DataArray
        ``(..., band, y, x)``; see the module docstring.
    mask : array of bool, optional
        True where pixels count (in addition to the original's nodata).
    labels : array, optional
        ``(y, x)`` class codes (0 = unlabelled) for the classification utility.
    wavelength : sequence of float, optional
        Band centres in nm (overrides a DataArray's coordinate); without red and NIR bands NDVI is
        reported as ``None`` with an ``ndvi_note``.
    classify : bool
        Compute the classification utility (the slowest metric).
    seed : int
        Seed of the pixel sampling, k-means and random forest.

    Examples
    --------
    >>> import numpy as np
    >>> from xr_d2ar.metrics import Scorer
    >>> x = np.random.default_rng(0).uniform(0.0, 0.5, (2, 4, 32, 32))
    >>> scores = Scorer(x, wavelength=[490, 560, 665, 842])(x)
    >>> round(scores["ssim"], 9), scores["max_abs_error"], scores["classification"]["agreement"]
    (1.0, 0.0, 1.0)
    """

    def __init__(
        self,
        original: ArrayLike,
        *,
        mask: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        wavelength: Sequence[float] | None = None,
        classify: bool = True,
        seed: int = 0,
    ) -> None:
        self._ref = _original(original, mask, wavelength)
        self.band_ranges = _band_ranges(self._ref, None)
        self.data_range = _range_of(self._ref.values)
        self.ndvi_bands: tuple[int, int] | None = None
        self.ndvi_note = ""
        try:
            self.ndvi_bands = find_red_nir(self._ref.wavelength, self._ref.bands)
        except UnknownBandError as exc:
            self.ndvi_note = str(exc)
        self._classifier = None
        if classify:
            self._classifier = _PixelClassifier(
                self._ref, _labels_array(labels), n_clusters=8, n_train=4000, n_eval=20000,
                seed=seed,
            )

    def __call__(self, reconstruction: ArrayLike) -> dict[str, Any]:
        """Score ``reconstruction`` (same shape and kind as the original); a JSON-ready dict."""
        ref = self._ref
        rec = _reconstruction(ref, reconstruction)
        ssim_b = _ssim_bands(ref, rec, self.band_ranges)
        ang = _angles(ref, rec)
        out: dict[str, Any] = {
            "n_valid": int(np.count_nonzero(ref.valid)),
            "psnr": _psnr(rec - ref.values, ref.valid, self.data_range),
            "psnr_data_range": self.data_range,
            "psnr_per_band": dict(zip(ref.bands, _psnr_bands(ref, rec, self.band_ranges).tolist())),
            "band_data_range": dict(zip(ref.bands, self.band_ranges.tolist())),
            "ssim": float(np.nanmean(ssim_b)),
            "ssim_per_band": dict(zip(ref.bands, ssim_b.tolist())),
            "spectral_angle_deg": float(ang.mean()) if ang.size else float("nan"),
            "max_abs_error": _max_abs(ref, rec),
            "ndvi_mae": None,
        }
        if self.ndvi_bands is not None:
            out["ndvi_mae"] = _ndvi_mae(ref, rec, *self.ndvi_bands)
            out["ndvi_bands"] = [ref.bands[i] for i in self.ndvi_bands]
        else:
            out["ndvi_note"] = self.ndvi_note
        if self._classifier is not None:
            out["classification"] = self._classifier.score(rec)
        return out


def evaluate(
    original: ArrayLike,
    reconstruction: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    wavelength: Sequence[float] | None = None,
    classify: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric at once; see :class:`Scorer` for the parameters and the returned keys."""
    scorer = Scorer(
        original, mask=mask, labels=labels, wavelength=wavelength, classify=classify, seed=seed
    )
    return scorer(reconstruction)
