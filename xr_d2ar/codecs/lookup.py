"""Find a prior by its sha256 in this process: cache, path hint, shipped default, search path.

Codecs get bytes only and Dask workers get a sha256 only, so every layer that needs a model asks
:func:`find_model`. Models are cached per process by ``(sha256, device)`` in one cache
(:func:`cached_model`, which :func:`xr_d2ar.model.load_model` uses too) and never travel in a task
graph. A non-default prior is found through ``$XR_D2AR_MODEL_PATH``: folders or ``.safetensors``
files separated by ``os.pathsep`` (set it on every Dask worker too), or through
:func:`register_model_path`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from xr_d2ar._hashing import sha256_file
from xr_d2ar._model_cache import cached_model
from xr_d2ar._model_cache import lock as _lock
from xr_d2ar._model_cache import models as _models
from xr_d2ar._options import OPTIONS
from xr_d2ar.errors import ModelMismatchError

if TYPE_CHECKING:
    from xr_d2ar.model.api import D2arModel

__all__ = [
    "ENV_VAR",
    "cached_model",
    "file_sha256",
    "find_model",
    "known_path",
    "register_model_path",
    "remember",
    "search_path",
]

ENV_VAR = "XR_D2AR_MODEL_PATH"

_paths: dict[str, Path] = {}  # sha256 -> weights file, learnt in this process
_hashes: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, cached per process by (path, size, mtime)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key not in _hashes:
            _hashes[key] = sha256_file(path)
        return _hashes[key]


def register_model_path(path: str | os.PathLike) -> str:
    """Make the prior at ``path`` (its ``.safetensors`` file) findable by sha256; return it."""
    path = Path(path)
    sha = file_sha256(path)
    with _lock:
        _paths[sha] = path.resolve()
    return sha


def search_path() -> list[Path]:
    """Weights files named by ``$XR_D2AR_MODEL_PATH`` (folders are listed, not recursed)."""
    files: list[Path] = []
    for entry in filter(None, os.environ.get(ENV_VAR, "").split(os.pathsep)):
        path = Path(entry).expanduser()
        if path.is_dir():
            files.extend(sorted(path.glob("*.safetensors")))
        elif path.is_file():
            files.append(path)
    return files


def _device(device: str | None) -> str:
    """Resolve ``'auto'`` (and the ``device`` option) to ``'cpu'`` or ``'cuda'``."""
    dev = str(device or OPTIONS["device"])
    if dev == "auto":
        import torch

        dev = "cuda" if torch.cuda.is_available() else "cpu"
    return dev


def find_model(
    sha256: str,
    *,
    name: str | None = None,
    path: str | os.PathLike | None = None,
    device: str | None = None,
) -> D2arModel:
    """Return the prior whose weights file has this sha256, loading it once per process and device.

    Looks, in order, at: models already used in this process, the ``path`` hint, weights files
    registered with :func:`register_model_path`, the shipped default prior, ``$XR_D2AR_MODEL_PATH``.
    Only a file whose sha256 matches is loaded.

    Parameters
    ----------
    sha256 : str
        Hex sha256 of the prior's ``.safetensors`` file (what stores and payloads record).
    name : str, optional
        The prior's name, used in the error message only.
    path : path, optional
        A weights file to try first (e.g. the one recorded when the store was written).
    device : str, optional
        ``'auto'``, ``'cpu'``, ``'cuda'``...; default: ``xr_d2ar.get_options()['device']``.

    Raises
    ------
    ModelMismatchError
        When no reachable prior has this sha256; the message names the model and the fix.
    """
    from xr_d2ar.model import DEFAULT_PRIOR, load_model

    dev = _device(device)
    with _lock:
        cached = _models.get((sha256, dev))
        if cached is not None:
            return cached
        candidates = [Path(p) for p in (path, _paths.get(sha256), DEFAULT_PRIOR) if p is not None]
    tried: list[str] = []
    for candidate in [*candidates, *search_path()]:
        if not candidate.is_file():
            continue
        if file_sha256(candidate) != sha256:
            tried.append(str(candidate))
            continue
        model = load_model(candidate, device=dev)  # through cached_model: loaded once per key
        with _lock:
            _paths[sha256] = candidate.resolve()
        return model
    label = f"{name!r} " if name else ""
    raise ModelMismatchError(
        f"The prior {label}(sha256 {sha256}) is not available in this process. Looked at: "
        f"{'; '.join(tried) or 'no prior files'}. Put its .safetensors and .json files in a folder "
        f"and set {ENV_VAR}=/that/folder (on every Dask worker too), or pass model=... explicitly.",
        expected=sha256,
    )


def known_path(sha256: str) -> Path | None:
    """The weights file of this sha256 known to this process (None for in-memory-only models)."""
    with _lock:
        return _paths.get(sha256)


def remember(model: D2arModel, path: str | os.PathLike | None = None) -> None:
    """Cache an already-loaded model in this process (and its weights file, when known)."""
    with _lock:
        _models[(model.sha256, str(model.device))] = model
        if path is not None:
            _paths[model.sha256] = Path(path).resolve()
