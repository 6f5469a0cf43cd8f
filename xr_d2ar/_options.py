"""Global options of xr_d2ar: a dict, validators and a ``set_options`` context manager."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["OPTIONS", "get_options", "set_options"]


def _data_dir_default() -> str | None:
    return os.environ.get("XR_D2AR_DATA")


OPTIONS: dict[str, Any] = {
    "data_dir": _data_dir_default(),
    "progress": True,
    "device": "auto",
    "decode_engine": "auto",
}

_DEVICES = ("auto", "cpu", "cuda")
#: Decoders of the prior: ``auto`` (default: cext on the CPUs where it was measured at least as fast
#: as torch, see :func:`xr_d2ar.runtime.preferred`; torch elsewhere), ``torch``, or ``cext`` (the
#: CPU runtime: the same bits on every CPU, batch and thread count).
DECODE_ENGINES = ("auto", "torch", "cext")

_VALIDATORS: dict[str, Callable[[Any], bool]] = {
    "data_dir": lambda v: v is None or isinstance(v, (str, os.PathLike)),
    "progress": lambda v: isinstance(v, bool),
    "device": lambda v: isinstance(v, str) and (v in _DEVICES or v.startswith("cuda:")),
    "decode_engine": lambda v: v in DECODE_ENGINES,
}

_DESCRIPTIONS = {
    "data_dir": "a folder path or None",
    "progress": "True or False",
    "device": "'auto', 'cpu', 'cuda' or 'cuda:N'",
    "decode_engine": "'auto', 'torch' or 'cext'",
}


def get_options() -> dict[str, Any]:
    """Return a copy of the current options."""
    return dict(OPTIONS)


class set_options:
    """Set xr_d2ar options globally or inside a ``with`` block.

    Parameters
    ----------
    data_dir : str or None
        Folder of the sample cubes (default: ``$XR_D2AR_DATA`` or ``../shared/data``).
    progress : bool
        Show progress bars on long work (default True).
    device : str
        Where torch decoding runs: ``'auto'`` (GPU when present), ``'cpu'``, ``'cuda'``.
    decode_engine : str
        What decodes the prior: ``'auto'`` (default: ``'cext'`` when the model is on the CPU and
        the CPU is one where cext was measured at least as fast as torch, x86-64 with AVX2 today,
        1.4x; ``'torch'`` otherwise), ``'torch'`` (on the option ``device``) or ``'cext'`` (our
        CPU kernels, :mod:`xr_d2ar.runtime`: the same bits on every CPU, batch and thread count).

    Examples
    --------
    >>> import xr_d2ar
    >>> with xr_d2ar.set_options(progress=False):
    ...     xr_d2ar.get_options()["progress"]
    False
    """

    def __init__(self, **kwargs: Any) -> None:
        self.old: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in OPTIONS:
                raise ValueError(
                    f"Unknown option {key!r}. Valid options: {', '.join(sorted(OPTIONS))}."
                )
            if not _VALIDATORS[key](value):
                raise ValueError(f"Option {key!r} must be {_DESCRIPTIONS[key]}. Got {value!r} instead.")
            self.old[key] = OPTIONS[key]
        OPTIONS.update(kwargs)

    def __enter__(self) -> set_options:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        OPTIONS.update(self.old)
