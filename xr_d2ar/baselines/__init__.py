"""Classical codecs and trivial references for the bench, behind one small registry.

Each codec lives in its own module and follows the contract of :class:`BaselineCodec`
(see :mod:`xr_d2ar.baselines._base`). Codecs are looked up by name:

>>> from xr_d2ar import baselines
>>> baselines.codec_names()
['sz3', 'zfp', 'sperr', 'jpeg2k', 'htj2k', 'jpegxl', 'image-mean', 'climatology']
>>> baselines.get_codec("climatology", window_days=20)
Climatology(window_days=20)

A new codec (e.g. D2AR itself) joins the bench with :func:`register_codec`.
"""

from __future__ import annotations

import importlib
from typing import Any

from xr_d2ar.baselines._base import BaselineCodec, BlockCodec
from xr_d2ar.errors import CodecUnavailableError, UnknownCodecError

__all__ = [
    "CLASSICAL",
    "REFERENCES",
    "BaselineCodec",
    "BlockCodec",
    "codec_names",
    "get_codec",
    "register_codec",
]

#: name -> "module:Class" (imported on first use) or a registered class.
_REGISTRY: dict[str, str | type[BaselineCodec]] = {
    "sz3": "xr_d2ar.baselines.sz3:SZ3",
    "zfp": "xr_d2ar.baselines.zfp:ZFP",
    "sperr": "xr_d2ar.baselines.sperr:SPERR",
    "jpeg2k": "xr_d2ar.baselines.jpeg2k:JPEG2K",
    "htj2k": "xr_d2ar.baselines.jpeg2k:HTJ2K",
    "jpegxl": "xr_d2ar.baselines.jpegxl:JPEGXL",
    "image-mean": "xr_d2ar.baselines.references:ImageMean",
    "climatology": "xr_d2ar.baselines.references:Climatology",
}
CLASSICAL = ("sz3", "zfp", "sperr", "jpeg2k", "htj2k", "jpegxl")
REFERENCES = ("image-mean", "climatology")


def codec_names() -> list[str]:
    """Names of every registered codec, in registration order."""
    return list(_REGISTRY)


def _codec_class(name: str) -> type[BaselineCodec]:
    entry = _REGISTRY.get(name)
    if entry is None:
        raise UnknownCodecError(name, codec_names())
    if isinstance(entry, str):
        module, cls = entry.split(":")
        entry = getattr(importlib.import_module(module), cls)
    return entry


def get_codec(name: str, **config: Any) -> BaselineCodec:
    """A codec instance by name, configured with ``config`` (its dataclass fields).

    Raises
    ------
    UnknownCodecError
        If ``name`` is not registered (the message lists the known names).
    CodecUnavailableError
        If the codec's library is not installed (the message says what to install).
    """
    cls = _codec_class(name)
    if not cls.is_available():
        raise CodecUnavailableError(name, cls.package)
    return cls(**config)


def register_codec(cls: type[BaselineCodec]) -> type[BaselineCodec]:
    """Register a :class:`BaselineCodec` subclass under its ``name`` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, BaselineCodec)):
        raise TypeError(f"register_codec takes a BaselineCodec subclass. Got {cls!r} instead.")
    _REGISTRY[cls.name] = cls
    return cls
