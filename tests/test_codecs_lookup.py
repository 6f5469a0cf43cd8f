"""The process's one model cache: a key loads once, different keys load concurrently."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from xr_d2ar import _model_cache
from xr_d2ar.codecs import lookup


@pytest.fixture(autouse=True)
def empty_cache():
    """Run each test on an empty cache, then put back what the process had."""
    saved = dict(_model_cache.models), dict(_model_cache._loading)
    _model_cache.models.clear()
    _model_cache._loading.clear()
    yield
    _model_cache.models.clear()
    _model_cache._loading.clear()
    _model_cache.models.update(saved[0])
    _model_cache._loading.update(saved[1])


def test_the_model_loads_without_the_zarr_stack():
    """GPU nodes train and decode through ``benchmarks/gpu/lite.py``: no numcodecs, zarr, distributed or rioxarray there."""
    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys, types; pkg = types.ModuleType('xr_d2ar'); pkg.__path__ = [sys.argv[1]]; "
        "sys.modules['xr_d2ar'] = pkg; import xr_d2ar.model.api, xr_d2ar.train.trainer; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'numcodecs', 'zarr', 'distributed', 'rioxarray'}); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code, str(root / "xr_d2ar")], check=True)


def test_same_key_loads_once():
    calls = []

    def load():
        calls.append(1)
        time.sleep(0.05)
        return object()

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: lookup.cached_model("a", "cpu", load), range(4)))
    assert len(calls) == 1 and all(g is got[0] for g in got)
    assert lookup.cached_model("a", "cpu", load) is got[0] and len(calls) == 1


def test_different_keys_load_concurrently():
    both_loading = threading.Barrier(2, timeout=5)  # broken if the loads ran one after the other

    def load():
        both_loading.wait()
        return object()

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda key: lookup.cached_model(key, "cpu", load), ("a", "b"))
    assert a is not b and set(_model_cache.models) == {("a", "cpu"), ("b", "cpu")}


def test_a_failed_load_is_not_cached():
    def fail():
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        lookup.cached_model("a", "cpu", fail)
    assert _model_cache.models == {}
    model = object()
    assert lookup.cached_model("a", "cpu", lambda: model) is model
