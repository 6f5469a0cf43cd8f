"""cffi API-mode build of cext (build time only).

``cext/include/d2ar.h`` is the single source of the cdef: its preprocessor lines are dropped and
the rest (plain declarations, with comments) is handed to cffi.  Every C source is compiled with
the same portable flags: ISA-specific kernels carry ``__attribute__((target(...)))`` and are chosen
at run time, so no ``-march=native`` is ever used.  ``-ffp-contract=off`` keeps the compiler from
fusing multiplies and adds on its own, which would break bit-exactness across backends.
"""

from __future__ import annotations

import os
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Flags for every source (portable; runtime dispatch picks the ISA).
CFLAGS = ["-O2", "-std=gnu11", "-ffp-contract=off", "-fno-math-errno", "-fvisibility=hidden"]


def cdef_text() -> str:
    """Return the cdef: ``d2ar.h`` without its preprocessor lines."""
    header = (HERE / "include" / "d2ar.h").read_text()
    return "\n".join(line for line in header.splitlines() if not line.lstrip().startswith("#"))


def sources() -> list[str]:
    """Return the library's C sources, relative to the project root (setuptools wants that)."""
    files = [HERE / "src" / "dispatch.c", *sorted((HERE / "kernels").glob("*/*.c"))]
    return [os.path.relpath(f, ROOT) for f in files]


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "xr_d2ar.kernels._cext",
    '#include "d2ar.h"',
    sources=sources(),
    include_dirs=[os.path.relpath(HERE / "include", ROOT)],
    extra_compile_args=CFLAGS,
    libraries=["m"],
)

if __name__ == "__main__":  # python cext/_build.py: build in place for development
    os.chdir(ROOT)  # sources are relative to the project root
    ffibuilder.compile(tmpdir=".", verbose=True)
