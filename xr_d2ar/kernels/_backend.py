"""Which kernel implementation runs: the compiled cext library (one of its ISA backends) or,
only when ``XR_D2AR_KERNELS=numpy`` forces it, the NumPy fallback."""

from __future__ import annotations

import os
from typing import Any

from xr_d2ar.errors import KernelError

__all__ = ["BACKENDS", "backend", "backend_features", "ffi", "lib", "set_backend", "use_numpy"]

#: cext backends by id (the order of the D2AR_BACKEND_* enum), then the forced fallback.
BACKENDS = ("ref", "avx2", "avx512", "amx", "sme")
_NUMPY = "numpy"
_ENV = "XR_D2AR_KERNELS"
_CPU_BITS = {
    "fma": 1,
    "avx2": 2,
    "avx512f": 4,
    "avx512bw": 8,
    "avx512vl": 16,
    "avx512bf16": 32,
    "amx_tile": 64,
    "amx_bf16": 128,
    "amx_os": 256,
    "sme": 512,
}

try:
    from xr_d2ar.kernels._cext import ffi, lib
except ImportError:  # extension not built
    ffi = lib = None

_state: dict[str, Any] = {"numpy": None}


def _valid_names() -> str:
    return ", ".join((*BACKENDS, _NUMPY))


def _require_lib() -> Any:
    if lib is None:
        raise KernelError(
            "The compiled kernel library xr_d2ar.kernels._cext is not built. "
            "Build it with: pip install -e . --no-build-isolation (needs a C compiler), "
            f"or set {_ENV}=numpy to use the slow NumPy fallback."
        )
    return lib


def _backend_id(name: str) -> int:
    if name not in BACKENDS:
        raise KernelError(f"Unknown kernel backend {name!r}. Valid names: {_valid_names()}.")
    return BACKENDS.index(name)


def _apply(name: str) -> None:
    """Select ``name`` (a cext backend or 'numpy'); raise KernelError if it cannot run here."""
    if name == _NUMPY:
        _state["numpy"] = True
        return
    cext = _require_lib()
    bid = _backend_id(name)
    if cext.d2ar_set_backend(bid) != 0:
        available = [b for i, b in enumerate(BACKENDS) if cext.d2ar_backend_available(i)]
        raise KernelError(
            f"Kernel backend {name!r} is not available on this machine "
            f"(compiled: {bool(cext.d2ar_backend_compiled(bid))}). "
            f"Available: {', '.join(available)}. Pick one of those."
        )
    _state["numpy"] = False


def use_numpy() -> bool:
    """True when the NumPy fallback is in force (first call reads ``$XR_D2AR_KERNELS``)."""
    if _state["numpy"] is None:
        forced = os.environ.get(_ENV, "").strip().lower()  # AVX2 means avx2
        if forced:
            if forced not in (*BACKENDS, _NUMPY):
                raise KernelError(
                    f"{_ENV}={forced!r} is not a kernel backend. "
                    f"Valid values: {_valid_names()}. Unset it to choose the best automatically."
                )
            _apply(forced)
        else:
            _require_lib()
            _state["numpy"] = False
    return bool(_state["numpy"])


def backend() -> str:
    """Name of the kernel implementation in use: 'ref', 'avx2', 'avx512', 'amx', 'sme' or 'numpy'.

    Examples
    --------
    >>> from xr_d2ar import kernels
    >>> kernels.backend() in ("ref", "avx2", "avx512", "amx", "sme", "numpy")
    True
    """
    if use_numpy():
        return _NUMPY
    return BACKENDS[_require_lib().d2ar_get_backend()]


def set_backend(name: str | None) -> str:
    """Force a kernel backend for this process; ``None`` picks the best one again.

    Parameters
    ----------
    name : str or None
        'ref', 'avx2', 'avx512', 'amx' (bf16 GEMM not bit-exact), 'sme', 'numpy' (the slow,
        not bit-exact fallback), or None for the best bit-exact backend this CPU supports.

    Returns
    -------
    str
        The backend that was in use before (pass it back to restore).

    Raises
    ------
    KernelError
        The name is unknown or the backend is not available on this machine.
    """
    previous = backend()
    if name is None:
        cext = _require_lib()
        best = next(b for b in ("sme", "avx512", "avx2", "ref")  # bit-exact ones only
                    if cext.d2ar_backend_available(BACKENDS.index(b)))
        _apply(best)
    else:
        _apply(name)
    return previous


def backend_features() -> dict[str, Any]:
    """What the kernel library can use here.

    Returns
    -------
    dict
        ``backend`` (in use), ``compiled`` and ``available`` (backend names), ``cpu`` (detected
        CPU features), ``tile`` (fp32 and bf16 register tile ``(rows, cols)`` of the backend in
        use, or None for numpy) and ``bit_exact`` (per dtype, whether GEMM gives the reference
        bits: False for the NumPy fallback, and for bf16 on AMX).
    """
    name = backend()
    if lib is None:
        return {"backend": name, "compiled": [], "available": [], "cpu": [], "tile": None,
                "bit_exact": {"fp32": False, "bf16": False}}
    bits = int(lib.d2ar_cpu_features())
    tile, exact = None, {"fp32": False, "bf16": False}
    if name != _NUMPY:
        tile = {}
        for dtype, label in ((0, "fp32"), (1, "bf16")):
            mr, nr = ffi.new("int64_t *"), ffi.new("int64_t *")
            lib.d2ar_backend_tile(BACKENDS.index(name), dtype, mr, nr)
            tile[label] = (int(mr[0]), int(nr[0]))
            exact[label] = bool(lib.d2ar_backend_bit_exact(BACKENDS.index(name), dtype))
    return {
        "backend": name,
        "compiled": [b for i, b in enumerate(BACKENDS) if lib.d2ar_backend_compiled(i)],
        "available": [b for i, b in enumerate(BACKENDS) if lib.d2ar_backend_available(i)],
        "cpu": [k for k, v in _CPU_BITS.items() if bits & v],
        "tile": tile,
        "bit_exact": exact,
    }
