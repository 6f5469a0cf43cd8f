"""The ``d2ar`` command line: one sub-module per sub-command.

Each module ``xr_d2ar.cli.<name>`` defines ``register(subparsers)`` that adds its parser and sets
``func`` (a callable taking the parsed ``argparse.Namespace`` and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

__all__ = ["build_parser", "main"]

_COMMANDS = ("train", "compress", "reconstruct", "info", "bench", "demo")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``d2ar`` parser with every sub-command."""
    from xr_d2ar import __version__

    parser = argparse.ArgumentParser(
        prog="d2ar",
        description="Generative compression of Earth-observation data cubes (D2AR).",
    )
    parser.add_argument("--version", action="version", version=f"xr_d2ar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(f"xr_d2ar.cli.{name}").register(sub)
    return parser


#: What a cube lacks (``CubeValidationError.missing``, also the option's name) -> the options
#: that supply it on the command line.
_FLAGS = {
    "crs": "--crs EPSG:NNNNN",
    "time": "--time DATE[,...]",
    "wavelength": "--wavelength NM[,...] --bandwidth NM[,...] / --sensor NAME",
    "sensor": "--sensor NAME",
}


def _print_notes(exc: BaseException) -> None:
    """The notes the library added to an exception (e.g. a store left incomplete)."""
    for note in getattr(exc, "__notes__", ()):
        print(f"({note.removeprefix('xr_d2ar: ')})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``d2ar`` console script."""
    from xr_d2ar.errors import D2arError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from xr_d2ar._options import set_options

    # --no-progress reaches every computation of the command, also those it starts indirectly
    quiet = {"progress": False} if getattr(args, "no_progress", False) else {}
    try:
        with warnings.catch_warnings(), set_options(**quiet):
            # warnings are messages to the user here: one line each, without source locations
            warnings.showwarning = lambda msg, *_a, **_k: print(
                f"d2ar {args.command}: warning: {msg}", file=sys.stderr
            )
            return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`d2ar info ... --json | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except KeyboardInterrupt as exc:  # Ctrl-C: no traceback, but say what it left behind
        print(f"d2ar {args.command}: interrupted", file=sys.stderr)
        _print_notes(exc)
        return 130
    except (D2arError, ValueError, OSError) as exc:  # bad input: the message names the fix
        if os.environ.get("XR_D2AR_DEBUG") == "1":
            raise
        print(f"d2ar {args.command}: error: {exc}", file=sys.stderr)
        _print_notes(exc)
        missing = str(getattr(exc, "missing", ""))
        if missing in _FLAGS and hasattr(args, missing):  # this command has the option
            print(f"(on the command line: {_FLAGS[missing]})", file=sys.stderr)
        fix = getattr(exc, "fix", None)  # ChunkAlignmentError: chunk sizes that work
        if fix and hasattr(args, "chunks"):
            sizes = ",".join(f"{dim}={size}" for dim, size in fix.items())
            print(f"(on the command line: --chunks {sizes})", file=sys.stderr)
        print("(set XR_D2AR_DEBUG=1 for the full traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
