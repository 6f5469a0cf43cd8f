"""Build hook: compiles the cext kernel library into ``xr_d2ar.kernels._cext`` (cffi API mode).

All metadata lives in pyproject.toml; this file only names the cffi module.
"""

from setuptools import setup

setup(cffi_modules=["cext/_build.py:ffibuilder"])
