"""Exception tree of xr_d2ar.

Every error says what was expected, what was received ("Got ...") and how to fix it.
All inherit from :class:`D2arError` so callers can catch the library's errors at once.
"""

from __future__ import annotations

__all__ = [
    "ChunkAlignmentError",
    "CodecUnavailableError",
    "CubeValidationError",
    "D2arError",
    "DataNotFoundError",
    "IncompleteStoreError",
    "KernelError",
    "MissingCRSError",
    "MissingTimeError",
    "ModelMismatchError",
    "UnknownBandError",
    "UnknownCodecError",
]


class D2arError(RuntimeError):
    """Base class of every error raised by xr_d2ar."""


class DataNotFoundError(D2arError, FileNotFoundError):
    """A sample cube or data folder could not be found."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class CubeValidationError(D2arError, ValueError):
    """An input cube does not have the canonical form; the message says what is missing."""

    def __init__(self, message: str, *, missing: str | None = None) -> None:
        super().__init__(message)
        self.missing = missing


class IncompleteStoreError(CubeValidationError):
    """A token store whose chunks were never all written (its compression failed or was
    killed): decoding it would turn the missing tiles into made-up data."""


class MissingCRSError(CubeValidationError):
    """The cube has no coordinate reference system."""


class MissingTimeError(CubeValidationError):
    """The cube has no usable observation time."""


class UnknownBandError(CubeValidationError):
    """A band has no known centre wavelength / bandwidth (or a model does not know it)."""

    def __init__(self, message: str, *, bands: list[str] | None = None) -> None:
        super().__init__(message, missing="wavelength")
        self.bands = bands or []


class ChunkAlignmentError(D2arError, ValueError):
    """Dask chunks are not aligned to the model's tiles; ``fix`` holds chunk sizes that work
    (``{dim: size}``), for a caller that words the fix its own way (the CLI's ``--chunks``)."""

    def __init__(self, message: str, *, fix: dict[str, int] | None = None) -> None:
        super().__init__(message)
        self.fix = fix or {}


class ModelMismatchError(D2arError, ValueError):
    """A store or payload names a model (sha256) other than the one available."""

    def __init__(self, message: str, *, expected: str | None = None, got: str | None = None) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got


class UnknownCodecError(D2arError, ValueError):
    """A codec id is not known to the baseline harness or the codec registry."""

    def __init__(self, codec_id: str, known: list[str] | None = None) -> None:
        known_s = ", ".join(sorted(known)) if known else "none"
        super().__init__(f"Unknown codec {codec_id!r}. Known codecs: {known_s}.")
        self.codec_id = codec_id


class CodecUnavailableError(D2arError, ImportError):
    """A codec's library is not installed."""

    def __init__(self, codec_id: str, package: str) -> None:
        super().__init__(
            f"Codec {codec_id!r} needs the package {package!r}, which is not installed. "
            f"Install it with: pip install 'xr_d2ar[baselines]' (or pip install {package})."
        )
        self.codec_id = codec_id
        self.package = package


class KernelError(D2arError):
    """A compiled kernel returned an error code."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
