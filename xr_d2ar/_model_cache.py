"""The process's one cache of loaded priors, by ``(sha256, device)``; imports neither torch nor the codecs.

:func:`xr_d2ar.model.load_model` and :func:`xr_d2ar.codecs.lookup.find_model` both go through it, and
it sits outside both packages so that the model loads where the Zarr/numcodecs stack is absent (GPU
training nodes, ``benchmarks/gpu/lite.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xr_d2ar.model.api import D2arModel

__all__ = ["cached_model", "lock", "models"]

models: dict[tuple[str, str], D2arModel] = {}  # (sha256, device) -> model
lock = threading.RLock()  # guards ``models`` (and the lookup module's tables)
_loading: dict[tuple[str, str], threading.Lock] = {}  # (sha256, device) -> held while it loads


def cached_model(sha256: str, device: str, load: Callable[[], D2arModel]) -> D2arModel:
    """The model cached under ``(sha256, device)``, else ``load()`` it once and cache it.

    Loading holds a lock of that key only: callers asking for the same key wait for the one load,
    other priors and devices load concurrently.
    """
    key = (sha256, device)
    with lock:
        if key in models:
            return models[key]
        key_lock = _loading.setdefault(key, threading.Lock())
    with key_lock:
        with lock:
            if key in models:
                return models[key]
        model = load()
        with lock:
            return models.setdefault(key, model)
