"""Run a script or module with ``xr_d2ar`` imported without its top-level ``__init__``.

GPU nodes have torch, numpy, xarray and safetensors but not the geo/Zarr/Dask stack that the
package's ``__init__`` pulls in; training from a tile pack and the model need none of it.

    python3 benchmarks/gpu/lite.py -m xr_d2ar.train --pack .gpu/pack --out runs/prior
    torchrun --nproc_per_node=2 benchmarks/gpu/lite.py benchmarks/gpu/throughput.py --pack .gpu/pack ...
"""

import runpy
import sys
import types
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]
_pkg = types.ModuleType("xr_d2ar")
_pkg.__path__ = [str(_ROOT / "xr_d2ar")]
sys.modules["xr_d2ar"] = _pkg
sys.path.insert(0, str(_ROOT))

if len(sys.argv) < 2:
    sys.exit("usage: lite.py (-m MODULE | SCRIPT) [ARGS...]")
if sys.argv[1] == "-m":
    module = sys.argv[2]
    sys.argv = [module, *sys.argv[3:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
else:
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")
