"""``python -m xr_d2ar.train ARGS`` runs ``d2ar train ARGS`` (handy under ``torchrun``).

Only the ``train`` sub-command is loaded, so a training node needs none of the other
sub-commands' dependencies (Dask, Zarr, codecs).
"""

import argparse
import sys

from xr_d2ar.cli import train as _cli_train
from xr_d2ar.errors import D2arError

_parser = argparse.ArgumentParser(prog="python -m xr_d2ar.train")
_cli_train.register(_parser.add_subparsers(dest="command"))
_args = _parser.parse_args(["train", *sys.argv[1:]])
try:
    sys.exit(_args.func(_args))
except D2arError as exc:
    print(f"d2ar train: error: {exc}", file=sys.stderr)
    sys.exit(1)
