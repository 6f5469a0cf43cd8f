"""What machine a benchmark ran on: shared by the scripts under ``benchmarks/``.

Import from a script in ``benchmarks/`` (its folder is on ``sys.path``) or put this folder on
``sys.path`` first (``benchmarks/kernels/*`` do).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: /proc/cpuinfo flags worth recording next to a kernel figure.
_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile",
          "amx_bf16", "sme")


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo ({} where there is none)."""
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else platform.processor() or the architecture."""
    name = _cpuinfo().get("model name")
    return name or platform.processor() or platform.machine() or "unknown"


def cpu_details() -> dict:
    """Model name plus what identifies the CPU when a VM hides the name: vendor, family, model,
    stepping, the SIMD/matrix flags that the kernels dispatch on, and the logical CPU count."""
    info = _cpuinfo()
    flags = set(info.get("flags", info.get("Features", "")).split())
    return {
        "model_name": cpu_model(),
        "vendor": info.get("vendor_id", ""),
        "family": info.get("cpu family", ""),
        "model": info.get("model", ""),
        "stepping": info.get("stepping", ""),
        "flags": [f for f in _FLAGS if f in flags],
        "logical_cpus": os.cpu_count() or 1,
    }
