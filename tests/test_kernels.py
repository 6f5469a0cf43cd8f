"""cext kernels: every backend available here against the reference, bit for bit; the reference
against float64 and torch within stated tolerances; argument checking; backend selection."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from xr_d2ar import datasets, kernels
from xr_d2ar.errors import DataNotFoundError, KernelError

torch = pytest.importorskip("torch")
F = torch.nn.functional

AVAILABLE = kernels.backend_features()["available"]
OTHERS = [b for b in AVAILABLE if b != "ref"]
ACTS = ["none", "relu", "silu", "gelu_tanh"]


@contextmanager
def using(name: str) -> Iterator[None]:
    previous = kernels.set_backend(name)
    try:
        yield
    finally:
        kernels.set_backend(previous)


def on_each_backend(fn, *args, **kwargs) -> dict[str, np.ndarray]:
    """Run ``fn`` on the reference and on every other available backend."""
    out = {}
    for name in ["ref", *OTHERS]:
        with using(name):
            out[name] = fn(*args, **kwargs)
    return out


def assert_bit_identical(results: dict[str, np.ndarray], *, skip: tuple[str, ...] = ()) -> None:
    ref = results["ref"]
    for name, got in results.items():
        if name in skip:
            continue
        assert got.dtype == ref.dtype and got.shape == ref.shape, name
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32)), f"{name} != ref"


@pytest.fixture(scope="module")
def tile() -> np.ndarray:
    """A real Sentinel-2 tile, (bands, 32, 32) float32 reflectance."""
    try:
        ds = datasets.open("worldcereal_flanders_a_s2")
    except DataNotFoundError as exc:
        pytest.skip(f"sample cubes not found: {exc}")
    refl = datasets.to_reflectance(ds["reflectance"].isel(time=3, y=slice(0, 32), x=slice(0, 32)))
    arr = np.nan_to_num(refl.values.astype(np.float32))
    assert arr.shape[1:] == (32, 32) and np.ptp(arr) > 0
    return arr


# ---- GEMM: backends bit-identical -----------------------------------------------------------

def _case(rng: np.random.Generator, m: int, n: int, k: int, layout: str, dtype: str):
    """Operands with the given memory layout: contiguous, transposed or strided slices."""
    if layout == "strided":
        a = rng.standard_normal((m, 2 * k + 1), dtype=np.float32)[:, 1::2]
        b = rng.standard_normal((k, 3 * n), dtype=np.float32)[:, ::3]
    elif layout == "transposed":
        a = rng.standard_normal((k, m), dtype=np.float32).T
        b = rng.standard_normal((n, k), dtype=np.float32).T
    else:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
    if dtype == "bf16":
        a, b = kernels.to_bf16(np.ascontiguousarray(a)), kernels.to_bf16(np.ascontiguousarray(b))
    return a, b, rng.standard_normal(n, dtype=np.float32)


SHAPES = [(1, 1, 1), (7, 5, 0), (33, 65, 300), (64, 64, 64), (13, 37, 513), (97, 3, 129),
          (2, 200, 17), (100, 70, 800)]  # last: whole packed panels and several k blocks


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
def test_gemm_backends_bit_identical(dtype: str, layout: str) -> None:
    rng = np.random.default_rng(5)
    shapes = SHAPES + [tuple(int(v) for v in rng.integers(1, 90, 3)) for _ in range(6)]
    for i, (m, n, k) in enumerate(shapes):
        a, b, bias = _case(rng, m, n, k, layout, dtype)
        act = ACTS[i % len(ACTS)]
        results = on_each_backend(kernels.gemm, a, b, bias if i % 2 else None, activation=act)
        # AMX bf16 is documented as not bit-exact (test_amx_bf16_within_tolerance)
        assert_bit_identical(results, skip=("amx",) if dtype == "bf16" else ())


@pytest.mark.skipif("amx" not in AVAILABLE, reason="this CPU has no AMX-BF16")
def test_amx_bf16_within_tolerance() -> None:
    rng = np.random.default_rng(6)
    for m, n, k in SHAPES:
        a, b, bias = _case(rng, m, n, k, "contiguous", "bf16")
        results = on_each_backend(kernels.gemm, a, b, bias)
        mag = np.abs(kernels.from_bf16(a).astype(np.float64)) @ np.abs(kernels.from_bf16(b)) + 1
        assert np.all(np.abs(results["amx"] - results["ref"]) <= 2 * (k + 1) * 2.0**-24 * mag)


@pytest.mark.parametrize("offset", [0, 16, 32, 4])
def test_gemm_output_alignment_changes_no_bits(offset: int) -> None:
    """A C that starts off a cache line (as numpy arrays often do), or with a row stride that
    is not a whole number of lines, gives the same bits as an aligned one on every backend;
    gemm's own outputs are cache-line aligned."""
    rng = np.random.default_rng(7)
    for m, n, k in [(64, 64, 64), (100, 70, 800), (33, 65, 300)]:
        for dtype in ("fp32", "bf16"):
            a, b, bias = _case(rng, m, n, k, "contiguous", dtype)
            for name in ["ref", *OTHERS]:
                with using(name):
                    plain = kernels.gemm(a, b, bias)
                    assert plain.ctypes.data % kernels.ALIGN == 0
                    out = kernels.empty_aligned((m, n + 3), offset=offset)[:, :n]
                    assert out.ctypes.data % kernels.ALIGN == offset
                    got = kernels.gemm(a, b, bias, out=out)
                assert got is out
                assert np.array_equal(got.view(np.uint32), plain.view(np.uint32)), (name, dtype)
    assert kernels.empty_aligned((3, 5), np.float64).ctypes.data % kernels.ALIGN == 0
    with pytest.raises(ValueError, match="multiple of the item size"):
        kernels.empty_aligned((2, 2), offset=6)


def test_gemm_k_zero_is_bias_then_activation() -> None:
    bias = np.array([-1.0, 0.0, 2.5], np.float32)
    for name in AVAILABLE:
        with using(name):
            c = kernels.gemm(np.empty((4, 0), np.float32), np.empty((0, 3), np.float32), bias,
                             activation="relu")
        np.testing.assert_array_equal(c, np.tile(np.maximum(bias, 0), (4, 1)))


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_gemm_reference_vs_float64(dtype: str) -> None:
    """|c - exact| <= 2 K u sum|a b| (u = 2^-24): the standard bound of a K-step fma chain."""
    rng = np.random.default_rng(11)
    for m, n, k in [(40, 50, 700), (9, 130, 1), (64, 32, 4096)]:
        a, b, bias = _case(rng, m, n, k, "contiguous", dtype)
        with using("ref"):
            c = kernels.gemm(a, b, bias)
        a64 = kernels.from_bf16(a).astype(np.float64) if dtype == "bf16" else a.astype(np.float64)
        b64 = kernels.from_bf16(b).astype(np.float64) if dtype == "bf16" else b.astype(np.float64)
        exact = a64 @ b64 + bias
        bound = 2 * (k + 1) * 2.0**-24 * (np.abs(a64) @ np.abs(b64) + np.abs(bias))
        assert np.all(np.abs(c - exact) <= bound)


def test_gemm_matches_torch_linear_on_real_tile(tile: np.ndarray) -> None:
    """A Linear layer over the pixels of a real tile: within float32 tolerance of torch."""
    rng = np.random.default_rng(2)
    x = tile.reshape(tile.shape[0], -1).T.copy()  # (pixels, bands)
    w = rng.standard_normal((48, x.shape[1]), dtype=np.float32)
    bias = rng.standard_normal(48, dtype=np.float32)
    expected = F.gelu(F.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias)),
                      approximate="tanh").numpy()
    results = on_each_backend(kernels.gemm, x, w.T, bias, activation="gelu_tanh")
    assert_bit_identical(results)
    np.testing.assert_allclose(results["ref"], expected, rtol=1e-5, atol=1e-5)


# ---- other ops --------------------------------------------------------------------------------

def test_conv2d_matches_torch_and_is_bit_identical(tile: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    x = tile[None]  # (1, B, 32, 32)
    for ks in (3, 1):
        w = rng.standard_normal((16, x.shape[1], ks, ks), dtype=np.float32) * 0.3
        bias = rng.standard_normal(16, dtype=np.float32)
        results = on_each_backend(kernels.conv2d, x, w, bias, activation="silu")
        assert_bit_identical(results)
        expected = F.silu(F.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                   torch.from_numpy(bias), padding=ks // 2)).numpy()
        np.testing.assert_allclose(results["ref"], expected, rtol=1e-4, atol=1e-5)


def test_norms_softmax_attention_match_torch(tile: np.ndarray) -> None:
    rng = np.random.default_rng(4)
    x = np.concatenate([tile, tile[::-1] * 2.0])[None]  # (1, 2B, 32, 32) real values
    gamma = rng.standard_normal(x.shape[1], dtype=np.float32)
    beta = rng.standard_normal(x.shape[1], dtype=np.float32)
    tx = torch.from_numpy(x)
    got = kernels.group_norm(x, 4, gamma, beta, eps=1e-6, activation="silu")
    want = F.silu(F.group_norm(tx, 4, torch.from_numpy(gamma), torch.from_numpy(beta), 1e-6))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=2e-5)

    seq = x.reshape(x.shape[1], -1).T.copy()  # (pixels, channels)
    got = kernels.layer_norm(seq, gamma, beta, eps=1e-5)
    want = F.layer_norm(torch.from_numpy(seq), (seq.shape[1],), torch.from_numpy(gamma),
                        torch.from_numpy(beta), 1e-5)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=2e-5)

    logits = rng.standard_normal((5, 7, 33), dtype=np.float32) * 6
    np.testing.assert_allclose(kernels.softmax(logits),
                               torch.softmax(torch.from_numpy(logits), -1).numpy(),
                               rtol=1e-5, atol=1e-7)

    q, k, v = (rng.standard_normal(s, dtype=np.float32) for s in
               [(2, 3, 40, 16), (2, 3, 24, 16), (2, 3, 24, 8)])
    results = on_each_backend(kernels.attention, q, k, v)
    assert_bit_identical(results)
    want = F.scaled_dot_product_attention(*(torch.from_numpy(t) for t in (q, k, v))).numpy()
    np.testing.assert_allclose(results["ref"], want, rtol=1e-5, atol=1e-5)


def test_activations_polynomials_accurate() -> None:
    x = np.linspace(-30, 30, 200001, dtype=np.float32)
    tx = torch.from_numpy(x.astype(np.float64))
    np.testing.assert_allclose(kernels.activation(x, "silu"), F.silu(tx).numpy(),
                               rtol=2e-6, atol=2e-7)
    np.testing.assert_allclose(kernels.activation(x, "gelu_tanh"),
                               F.gelu(tx, approximate="tanh").numpy(), rtol=2e-6, atol=4e-7)
    np.testing.assert_array_equal(kernels.activation(x, "relu"), np.maximum(x, 0))


def test_upsample_and_bf16_round_trip(tile: np.ndarray) -> None:
    up = kernels.upsample_nearest(tile[:2], 2)
    want = F.interpolate(torch.from_numpy(tile[None, :2]), scale_factor=2, mode="nearest")
    np.testing.assert_array_equal(up, want[0].numpy())
    bits = kernels.to_bf16(tile)
    np.testing.assert_array_equal(
        bits, torch.from_numpy(tile).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16))
    np.testing.assert_allclose(kernels.from_bf16(bits), tile, rtol=2**-8)


# ---- arguments and selection -----------------------------------------------------------------

def test_bad_arguments_raise_typed_errors() -> None:
    a = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="Got float64"):
        kernels.gemm(a.astype(np.float64), a.T)
    with pytest.raises(ValueError, match=r"Got shapes \(3, 4\) and \(3, 4\)"):
        kernels.gemm(a, a)
    with pytest.raises(ValueError, match="activation must be one of"):
        kernels.gemm(a, a.T, activation="tanh")
    with pytest.raises(ValueError, match="bias must have length 3"):
        kernels.gemm(a, a.T, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="unit column stride"):
        kernels.gemm(a, a.T, out=np.empty((3, 3), np.float64))
    with pytest.raises(ValueError, match="groups must divide"):
        kernels.group_norm(np.ones((1, 6, 2, 2), np.float32), 4)
    with pytest.raises(ValueError, match="weight must be"):
        kernels.conv2d(np.ones((1, 2, 5, 5), np.float32), np.ones((3, 4, 3, 3), np.float32))
    with pytest.raises(KernelError, match="Unknown kernel backend 'gpu'"):
        kernels.set_backend("gpu")
    missing = [b for b in kernels.BACKENDS if b not in AVAILABLE]
    if missing:
        with pytest.raises(KernelError, match="not available on this machine"):
            kernels.set_backend(missing[0])


def test_set_backend_none_restores_the_best() -> None:
    best = kernels.backend()
    previous = kernels.set_backend("ref")
    assert previous == best and kernels.backend() == "ref"
    assert kernels.set_backend(None) == "ref"
    assert kernels.backend() == best


def test_features_report_what_runs() -> None:
    feats = kernels.backend_features()
    assert feats["backend"] == kernels.backend() in feats["available"]
    assert "ref" in feats["compiled"] and set(feats["available"]) <= set(feats["compiled"])
    assert feats["bit_exact"]["fp32"] and feats["tile"]["fp32"][0] >= 1
    assert feats["backend"] != "amx"  # never chosen automatically: its bf16 is not bit-exact
    if "avx2" in feats["cpu"] and "fma" in feats["cpu"] and sys.platform.startswith("linux"):
        assert "avx2" in feats["available"]


def _in_subprocess(env_value: str, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XR_D2AR_KERNELS": env_value}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=False,
                          timeout=120)


@pytest.mark.parametrize("forced", AVAILABLE + ["numpy"])
def test_env_var_forces_backend(forced: str) -> None:
    code = ("import numpy as np; from xr_d2ar import kernels; "
            "c = kernels.gemm(np.ones((5, 7), np.float32), np.ones((7, 3), np.float32)); "
            "assert (c == 7).all(); print(kernels.backend())")
    res = _in_subprocess(forced, code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == forced


def test_env_var_unknown_value_is_an_error() -> None:
    res = _in_subprocess("fast", "from xr_d2ar import kernels; kernels.backend()")
    assert res.returncode != 0
    assert "XR_D2AR_KERNELS='fast' is not a kernel backend" in res.stderr


def test_numpy_fallback_within_tolerance(tile: np.ndarray) -> None:
    rng = np.random.default_rng(8)
    w = rng.standard_normal((8, tile.shape[0], 3, 3), dtype=np.float32)
    x = tile[None]
    exact = kernels.conv2d(x, w, activation="gelu_tanh")
    with using("numpy"):
        assert kernels.backend() == "numpy"
        assert not any(kernels.backend_features()["bit_exact"].values())
        approx = kernels.conv2d(x, w, activation="gelu_tanh")
        gn = kernels.group_norm(x, 2, activation="silu")
    np.testing.assert_allclose(approx, exact, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gn, kernels.group_norm(x, 2, activation="silu"),
                               rtol=1e-4, atol=1e-5)
