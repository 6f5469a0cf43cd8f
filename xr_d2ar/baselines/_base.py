"""The contract every bench codec follows, the payload container and the per-block driver.

Contract (:class:`BaselineCodec`)
---------------------------------
* A codec works on a canonical cube (:mod:`xr_d2ar.datasets`): ``compress(ds, param)`` reads the
  stored values of ``ds.reflectance`` ``(time, band, y, x)`` and returns **one** ``bytes`` payload;
  ``len(payload)`` is everything the decoder needs besides the cube's coordinates (shape, dtype,
  per-image parameters and every codec header are inside it).
* ``decompress(payload, like=coords)`` returns the stored values, same shape and dtype. ``like`` is
  the cube with its data variables removed (time, band, y, x, CRS): what any store keeps beside
  the payload. A codec never sees the original values when decoding.
* ``param`` is the codec's own knob: ``param_range`` bounds it, ``ratio_increases`` says whether a
  larger value compresses more, and the bench bisects it (log scale) to reach a target ratio.
  Codecs without a knob have ``param_range = None`` and are called with ``param=None``.
* Codecs that need the place's history (``needs_history = True``) get the earlier observations of
  the same grid as ``history`` (a canonical cube) in both calls.
* The config is the dataclass fields (JSON-only values): ``to_dict()`` gives
  ``{"name": ..., "configuration": {...}}``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from xr_d2ar.errors import CodecUnavailableError, CubeValidationError, D2arError

__all__ = ["BaselineCodec", "BlockCodec", "pack", "stored_values", "to_stored", "unpack"]

_MAGIC = b"XB"
_DTYPES = ("u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8")


# --------------------------------------------------------------------------- payload container


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def pack(shape: tuple[int, ...], dtype: np.dtype, streams: list[bytes]) -> bytes:
    """One payload: magic, dtype, shape, stream lengths (LEB128 varints), then the streams.

    The header is ``4 + len(shape) + n_streams`` bytes or a few more: it is counted in every ratio.
    """
    code = np.dtype(dtype).str[1:]
    if code not in _DTYPES:
        raise CubeValidationError(
            f"Stored dtype must be one of {', '.join(_DTYPES)}. Got {np.dtype(dtype)} instead."
        )
    head = bytearray(_MAGIC)
    head.append(_DTYPES.index(code))
    head.append(len(shape))
    for n in (*shape, len(streams), *(len(s) for s in streams)):
        head += _varint(int(n))
    return bytes(head) + b"".join(bytes(s) for s in streams)


def unpack(payload: bytes) -> tuple[tuple[int, ...], np.dtype, list[bytes]]:
    """Inverse of :func:`pack`: ``(shape, dtype, streams)``."""
    buf = memoryview(payload)
    if bytes(buf[:2]) != _MAGIC:
        raise D2arError(
            f"Not a bench payload: it starts with {bytes(buf[:2])!r}, expected {_MAGIC!r}. "
            "Decode it with the codec that wrote it."
        )
    dtype = np.dtype("<" + _DTYPES[buf[2]])
    pos, dims = 4, []
    for _ in range(buf[3]):
        n, pos = _read_varint(buf, pos)
        dims.append(n)
    n_streams, pos = _read_varint(buf, pos)
    lengths = []
    for _ in range(n_streams):
        n, pos = _read_varint(buf, pos)
        lengths.append(n)
    streams = []
    for n in lengths:
        streams.append(bytes(buf[pos : pos + n]))
        pos += n
    return tuple(dims), dtype, streams


def to_stored(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Decoded floats -> stored dtype: rounded and clipped for integers, cast for floats."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return np.asarray(values, dtype=dtype)


# --------------------------------------------------------------------------- contract


@dataclass(frozen=True)
class BaselineCodec(ABC):
    """Base class of the bench codecs (see the module docstring for the contract)."""

    name: ClassVar[str]
    #: Python package that provides the codec (named in :class:`CodecUnavailableError`).
    package: ClassVar[str] = "numpy"
    #: Name and bounds of the codec's own knob; None for codecs without one.
    param_name: ClassVar[str | None] = None
    param_range: ClassVar[tuple[float, float] | None] = None
    #: True if a larger ``param`` gives a higher compression ratio.
    ratio_increases: ClassVar[bool] = True
    #: How the cube is cut before coding, in words (reported by the bench).
    layout: ClassVar[str] = ""
    needs_history: ClassVar[bool] = False

    @classmethod
    def is_available(cls) -> bool:
        """Whether the codec's library can be imported here."""
        try:
            importlib.import_module(cls.package)
        except ImportError:
            return False
        return True

    @classmethod
    def _library(cls) -> Any:
        try:
            return importlib.import_module(cls.package)
        except ImportError:
            raise CodecUnavailableError(cls.name, cls.package) from None

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., "configuration": {...}}`` (JSON-ready)."""
        return {"name": self.name, "configuration": asdict(self)}

    def describe(self) -> dict[str, Any]:
        """Config plus knob, layout and library version, for reports."""
        lib = self._library()
        version = getattr(lib, "__version__", None)
        if version is None:
            from importlib.metadata import version as _version

            version = _version(self.package)
        return {
            **self.to_dict(),
            "param_name": self.param_name,
            "param_range": list(self.param_range) if self.param_range else None,
            "layout": self.layout,
            "library": f"{self.package} {version}",
        }

    @abstractmethod
    def compress(
        self, ds: xr.Dataset, param: float | None, *, history: xr.Dataset | None = None
    ) -> bytes:
        """Compress ``ds.reflectance`` (stored values) into one payload."""

    @abstractmethod
    def decompress(
        self, payload: bytes, *, like: xr.Dataset, history: xr.Dataset | None = None
    ) -> np.ndarray:
        """Stored values ``(time, band, y, x)`` from ``payload`` and the coordinates ``like``."""

    def _check_param(self, param: float | None) -> float:
        if self.param_range is None or param is None:
            raise ValueError(
                f"Codec {self.name!r} needs its parameter {self.param_name!r} in "
                f"{self.param_range}. Got {param!r} instead."
            )
        lo, hi = self.param_range
        if not lo <= float(param) <= hi:
            raise ValueError(
                f"{self.name} {self.param_name} must be within [{lo}, {hi}]. Got {param!r} "
                "instead."
            )
        return float(param)


# --------------------------------------------------------------------------- block driver


def stored_values(ds: xr.Dataset) -> np.ndarray:
    """``ds.reflectance`` as a C-contiguous ``(time, band, y, x)`` array of stored values."""
    if not isinstance(ds, xr.Dataset) or "reflectance" not in ds.data_vars:
        raise CubeValidationError(
            "Bench codecs take a canonical cube (Dataset with 'reflectance'). Got "
            f"{type(ds).__name__} instead. Use xr_d2ar.datasets.open_cube(...).",
            missing="reflectance",
        )
    da = ds["reflectance"]
    if da.ndim != 4:
        raise CubeValidationError(
            f"reflectance must be (time, band, y, x). Got dims {da.dims} instead. "
            "Use xr_d2ar.datasets.open_cube(...).",
            missing="dims",
        )
    return np.ascontiguousarray(da.transpose("time", "band", "y", "x").values)


def _core_shape(shape: tuple[int, ...], block_ndim: int) -> tuple[int, ...]:
    """Shape of one block; a one-band ``(1, y, x)`` block is coded as the 2-D image it is."""
    core = tuple(shape[len(shape) - block_ndim :])
    return core[1:] if len(core) == 3 and core[0] == 1 else core


@dataclass(frozen=True)
class BlockCodec(BaselineCodec):
    """A codec applied independently to blocks of the cube, one stream per block.

    ``block_ndim = 2``: one ``(y, x)`` image per (time, band); ``block_ndim = 3``: one
    ``(band, y, x)`` block per date (one observation is coded on its own, as it arrives; a
    one-band block is coded as 2-D). Subclasses implement ``_encode(block, param)`` and
    ``_decode(stream, shape, dtype)``.
    """

    block_ndim: ClassVar[int] = 2
    #: Stored dtypes the codec takes directly (numpy codes such as "u2").
    native_dtypes: ClassVar[tuple[str, ...]] = ()
    #: Whether other dtypes may be converted to float32 (exact for 16-bit integers) and coded.
    takes_float: ClassVar[bool] = True

    def compress(
        self, ds: xr.Dataset, param: float | None, *, history: xr.Dataset | None = None
    ) -> bytes:
        param = self._check_param(param)
        arr = stored_values(ds)
        if arr.dtype.str[1:] not in self.native_dtypes:
            if not self.takes_float:
                raise CubeValidationError(
                    f"{self.name} codes integer images ({', '.join(self.native_dtypes)}). Got "
                    f"stored dtype {arr.dtype} instead. Use sz3, zfp or sperr for float cubes."
                )
            arr = arr.astype(np.float32)
        blocks = arr.reshape((-1,) + _core_shape(arr.shape, self.block_ndim))
        streams = [self._encode(np.ascontiguousarray(b), param) for b in blocks]
        return pack(arr.shape, ds["reflectance"].dtype, streams)

    def decompress(
        self, payload: bytes, *, like: xr.Dataset, history: xr.Dataset | None = None
    ) -> np.ndarray:
        shape, dtype, streams = unpack(payload)
        core = _core_shape(shape, self.block_ndim)
        out = np.empty(shape, dtype=dtype)
        flat = out.reshape((-1,) + core)
        for i, stream in enumerate(streams):
            flat[i] = to_stored(self._decode(stream, core, dtype).reshape(core), dtype)
        return out

    @abstractmethod
    def _encode(self, block: np.ndarray, param: float) -> bytes:
        """One block (stored dtype if native, else float32) -> bytes."""

    @abstractmethod
    def _decode(self, stream: bytes, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Bytes -> one block of ``shape`` (any numeric dtype; rounded/clipped afterwards)."""
