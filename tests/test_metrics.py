"""Metrics: hand-checkable cases, agreement with scikit-image, nodata handling on real cubes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HAVE_DATA, needs_data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from xr_d2ar import datasets, metrics
from xr_d2ar.errors import CubeValidationError, UnknownBandError


@pytest.fixture(scope="module")
def real_pair():
    """A real Bouconne crop (2 dates, 10 bands, 40x48) in reflectance and a noisy copy."""
    if not HAVE_DATA:
        pytest.skip("sample cubes not found: set XR_D2AR_DATA (docs/data.md)")
    da = datasets.open("sentinel2_l3a_bouconne").reflectance.isel(
        time=slice(0, 2), y=slice(100, 140), x=slice(60, 108)
    )
    orig = datasets.to_reflectance(da).values.astype(np.float64)  # (2, 10, 40, 48), no nodata
    rec = orig + np.random.default_rng(1).normal(0.0, 0.01, orig.shape)
    return da, orig, rec


# --------------------------------------------------------------------------- hand-checkable


def test_psnr_hand_values():
    a = np.zeros((3, 8, 8))
    assert metrics.psnr(a, a + 0.1, data_range=1.0) == pytest.approx(20.0)
    assert metrics.psnr(a, a, data_range=1.0) == float("inf")
    b = a.copy()
    b[0] += 0.1  # band 0 error 0.1, band 1 error 0.01, band 2 exact
    b[1] += 0.01
    per_band = metrics.psnr_per_band(a, b, data_range=1.0)
    assert per_band[:2] == pytest.approx([20.0, 40.0])
    assert per_band[2] == float("inf")


def test_default_data_range_is_robust_percentile_range():
    x = np.linspace(0.0, 1.0, 2 * 20 * 25).reshape(2, 20, 25)
    lo, hi = np.percentile(x, [0.1, 99.9])
    assert metrics.data_range(x) == pytest.approx(hi - lo)
    per_band = metrics.data_range(x, per_band=True)
    assert per_band == pytest.approx([np.ptp(np.percentile(x[b], [0.1, 99.9])) for b in range(2)])
    # PSNR without data_range uses that range
    assert metrics.psnr(x, x + 0.01) == pytest.approx(10 * np.log10((hi - lo) ** 2 / 1e-4))


def test_max_abs_error_hand_value():
    a = np.zeros((2, 4, 4))
    b = a.copy()
    b[1, 2, 3] = -0.25
    b[0, 0, 0] = 0.1
    assert metrics.max_abs_error(a, b) == pytest.approx(0.25)


def test_spectral_angle_hand_values():
    o = np.array([1.0, 0.0]).reshape(2, 1, 1)
    assert metrics.spectral_angle(o, np.array([1.0, 1.0]).reshape(2, 1, 1)) == pytest.approx(45.0)
    assert metrics.spectral_angle(o, np.array([0.0, 3.0]).reshape(2, 1, 1)) == pytest.approx(90.0)
    assert metrics.spectral_angle(o, 7.0 * o) == pytest.approx(0.0, abs=1e-12)
    # a zero reconstructed spectrum has no direction: it counts as 90 degrees
    assert metrics.spectral_angle(o, np.zeros_like(o)) == pytest.approx(90.0)
    # tiny angles stay accurate: 1e-7 rad
    tiny = np.array([1.0, 1e-7]).reshape(2, 1, 1)
    assert metrics.spectral_angle(o, tiny) == pytest.approx(np.degrees(1e-7), rel=1e-6)


def test_ndvi_mae_hand_value():
    o = np.array([0.1, 0.5]).reshape(2, 1, 1)  # red, nir: NDVI 2/3
    r = np.array([0.1, 0.3]).reshape(2, 1, 1)  # NDVI 1/2
    assert metrics.ndvi_mae(o, r, wavelength=[665, 842]) == pytest.approx(2 / 3 - 1 / 2)


def test_ndvi_hand_values_any_leading_dims():
    x = np.zeros((2, 3, 1, 3))  # (time, band, y, x); red = band 0, NIR = band 2
    x[:, 0] = [0.1, 0.0, np.nan]
    x[:, 2] = [0.5, 0.0, 0.3]
    out = metrics.ndvi(x, 0, 2)
    assert out.shape == (2, 1, 3)
    np.testing.assert_allclose(out[0, 0, :2], [0.4 / 0.6, 0.0])  # 0 where NIR + red is 0
    assert np.isnan(out[0, 0, 2])  # nodata stays nodata
    np.testing.assert_allclose(metrics.ndvi(x[0], 0, 2), out[0])


def test_ndvi_needs_red_and_nir():
    x = np.ones((2, 4, 4))
    with pytest.raises(UnknownBandError, match="wavelength"):
        metrics.ndvi_mae(x, x)
    with pytest.raises(UnknownBandError, match="near-infrared band"):
        metrics.ndvi_mae(x, x, wavelength=[490, 665])


# --------------------------------------------------------------------------- against scikit-image


def test_psnr_matches_skimage(real_pair):
    _, orig, rec = real_pair
    rng = 0.8
    assert metrics.psnr(orig, rec, data_range=rng) == pytest.approx(
        peak_signal_noise_ratio(orig, rec, data_range=rng)
    )
    per_band = metrics.psnr_per_band(orig, rec, data_range=rng)
    expected = [peak_signal_noise_ratio(orig[:, b], rec[:, b], data_range=rng) for b in range(10)]
    assert per_band == pytest.approx(expected)


def test_ssim_matches_skimage(real_pair):
    _, orig, rec = real_pair
    ranges = metrics.data_range(orig, per_band=True)
    expected = np.mean(
        [
            np.mean(
                [
                    structural_similarity(orig[t, b], rec[t, b], data_range=ranges[b])
                    for t in range(2)
                ]
            )
            for b in range(10)
        ]
    )
    assert metrics.ssim(orig, rec) == pytest.approx(expected, rel=1e-9)
    assert metrics.ssim(orig, orig) == pytest.approx(1.0)


# --------------------------------------------------------------------------- nodata and inputs


def test_nodata_pixels_are_left_out(real_pair):
    _, orig, rec = real_pair
    o = orig.copy()
    o[:, :, 10:14, 20:26] = np.nan  # nodata hole in the original
    r1, r2 = rec.copy(), rec.copy()
    r1[:, :, 10:14, 20:26] = 0.0
    r2[:, :, 10:14, 20:26] = 5.0  # wildly different values where the original has no data
    for fn in (metrics.psnr, metrics.ssim, metrics.max_abs_error, metrics.spectral_angle):
        assert fn(o, r1) == pytest.approx(fn(o, r2))
    assert metrics.max_abs_error(o, r2) < 0.1
    # a mask works the same way as NaN
    mask = np.isfinite(o)
    assert metrics.psnr(orig, r2, mask=mask) == pytest.approx(metrics.psnr(o, r1))


def test_reconstruction_must_be_finite_where_valid():
    a = np.ones((2, 8, 8))
    b = a.copy()
    b[0, 3, 3] = np.nan
    with pytest.raises(CubeValidationError, match="NaN/inf at 1 values"):
        metrics.psnr(a, b)


def test_shape_and_mask_errors():
    a = np.ones((2, 8, 8))
    with pytest.raises(CubeValidationError, match="same shape"):
        metrics.psnr(a, np.ones((2, 8, 7)))
    with pytest.raises(CubeValidationError, match="mask must broadcast"):
        metrics.psnr(a, a, mask=np.ones((3, 8), bool))
    with pytest.raises(CubeValidationError, match="at least 2 bands"):
        metrics.spectral_angle(a[:1], a[:1])


@needs_data
def test_dataarray_input_uses_scale_and_fill():
    """Canonical stored ints: fill pixels of the original are nodata, scale_factor applied."""
    da = datasets.open("landsat_colorado_tm_etm").reflectance.isel(time=slice(0, 6)).load()
    fill = da.attrs["_FillValue"]
    assert (da.values == fill).any()  # this cube has nodata
    rec = da.copy(data=np.where(da.values == fill, 1234, da.values + 7).astype(da.dtype))
    # expected: numpy on physical values, NaN at the fill
    phys = datasets.to_reflectance(da).values.astype(np.float64)
    assert metrics.max_abs_error(da, rec) == pytest.approx(7 * 1e-4, rel=1e-4)
    assert metrics.psnr(da, rec) == pytest.approx(
        metrics.psnr(phys, phys + 7 * 1e-4), rel=1e-4
    )
    # a reconstructed value equal to the fill value is an error, not nodata
    rec0 = da.copy(data=np.where(da.values == fill, fill, 0).astype(da.dtype))
    assert metrics.max_abs_error(da, rec0) == pytest.approx(np.nanmax(np.abs(phys)), rel=1e-5)


@needs_data
@pytest.mark.parametrize(
    "name, red, nir",
    [
        ("worldcereal_flanders_a_s2", "B04", "B08"),
        ("worldcereal_flanders_a_landsat8", "B4", "B5"),
        ("landsat_colorado_tm_etm", "B3", "B4"),
        ("cbers4_awfi_bahia", "B15", "B16"),
    ],
)
def test_red_nir_found_from_wavelengths(name, red, nir):
    ds = datasets.open(name)
    bands = [str(b) for b in ds.band.values]
    i, j = metrics.find_red_nir(ds.wavelength.values, bands)
    assert (bands[i], bands[j]) == (red, nir)


# --------------------------------------------------------------------------- classification


@needs_data
def test_classification_utility_with_labels(flanders):
    da = flanders.reflectance.isel(time=slice(-3, None))
    same = metrics.classification_utility(da, da, labels=flanders.label, n_train=1500, n_eval=4000)
    assert same["label_source"] == "label"
    assert same["agreement"] == 1.0 and same["balanced_agreement"] == 1.0
    assert same["n_classes"] >= 2 and 0.3 < same["accuracy_original"] <= 1.0
    # every image replaced by its mean: one class everywhere
    means = da.mean(("y", "x")).values[..., None, None]
    flat = da.copy(data=np.broadcast_to(means, da.shape).astype(da.dtype))
    bad = metrics.classification_utility(da, flat, labels=flanders.label, n_train=1500, n_eval=4000)
    assert bad["agreement"] < 0.9 and bad["balanced_agreement"] <= 0.55


@needs_data
def test_classification_utility_kmeans_without_labels(cbers):
    da = cbers.reflectance.isel(time=slice(0, 2))
    out = metrics.classification_utility(da, da, n_clusters=5, n_train=1000, n_eval=3000)
    assert out["label_source"] == "kmeans(k=5)" and out["n_classes"] == 5
    assert out["agreement"] == 1.0 and out["accuracy_original"] > 0.8


# --------------------------------------------------------------------------- all at once


@needs_data
def test_scorer_matches_the_single_metrics(real_pair):
    da, orig, rec = real_pair
    scores = metrics.Scorer(orig, wavelength=da.wavelength.values, classify=False)(rec)
    assert scores["psnr"] == pytest.approx(metrics.psnr(orig, rec))
    assert scores["psnr_data_range"] == pytest.approx(metrics.data_range(orig))
    assert list(scores["psnr_per_band"].values()) == pytest.approx(
        metrics.psnr_per_band(orig, rec).tolist()
    )
    assert scores["ssim"] == pytest.approx(metrics.ssim(orig, rec))
    assert scores["spectral_angle_deg"] == pytest.approx(metrics.spectral_angle(orig, rec))
    assert scores["max_abs_error"] == pytest.approx(metrics.max_abs_error(orig, rec))
    wl = da.wavelength.values
    assert scores["ndvi_mae"] == pytest.approx(metrics.ndvi_mae(orig, rec, wavelength=wl))
    assert scores["ndvi_bands"] == ["2", "6"]  # numpy input: bands by index (B04, B08)
    no_wl = metrics.Scorer(orig, classify=False)(rec)
    assert no_wl["ndvi_mae"] is None and "wavelength" in no_wl["ndvi_note"]
