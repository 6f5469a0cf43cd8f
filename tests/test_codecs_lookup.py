"""The process's one model cache: a key loads once, different keys load concurrently."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from xr_d2ar.codecs import lookup


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch):
    monkeypatch.setattr(lookup, "_models", {})
    monkeypatch.setattr(lookup, "_loading", {})


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
    assert a is not b and set(lookup._models) == {("a", "cpu"), ("b", "cpu")}


def test_a_failed_load_is_not_cached():
    def fail():
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        lookup.cached_model("a", "cpu", fail)
    assert lookup._models == {}
    model = object()
    assert lookup.cached_model("a", "cpu", lambda: model) is model
