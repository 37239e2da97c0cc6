"""The ``diffpose-fast`` command line: demo, lift, train, evaluate, bench, info.

    diffpose-fast demo [--out DIR] [--quick]                 train a small model on built-in data, lift, draw
    diffpose-fast lift INPUT --checkpoint DIR [...]          3D poses from your 2D keypoints (npz, JSON, BVH)
    diffpose-fast train --data synthetic|h36m|3dhp --out DIR [--config cfg.yaml] [...]
    diffpose-fast evaluate --checkpoint DIR --data synthetic|h36m|3dhp [...]
    diffpose-fast bench [--device cuda] [...]                predict() frames per second
    diffpose-fast info                                       build, native module, GPU

argparse lives here only: every command turns its namespace into plain arguments of library functions.
Problems with the user's input (unreadable or empty files, a wrong format, a missing option) end with one line
"diffpose-fast <command>: error: ..." on stderr and exit code 2.
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

from ._common import PROG, CliError
from .bench import _cmd_bench
from .demo import _cmd_demo
from .evaluate import _cmd_evaluate
from .info import _cmd_info
from .lift import _cmd_lift
from .parser import build_parser
from .train import _cmd_train

__all__ = ["main", "build_parser", "CliError"]

_COMMANDS = {"demo": _cmd_demo, "lift": _cmd_lift, "train": _cmd_train, "evaluate": _cmd_evaluate,
             "bench": _cmd_bench, "info": _cmd_info}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default sys.argv[1:]); returns the exit code (0 ok, 2 usage/input
    error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argparse usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        return _COMMANDS[args.command](args)
    except CliError as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bad file or option deep in the library: one line, never a traceback
        if os.environ.get("DIFFPOSE_FAST_TRACEBACK"):
            raise
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr, flush=True)
        return 2


def _one_line(exc: BaseException) -> str:
    """The exception as one line: its message (the library's errors name the file or argument), else its type."""
    known = False
    if isinstance(exc, RecursionError):
        text = "the input is nested too deeply to read"
    elif isinstance(exc, MemoryError):
        text = "out of memory (the input asks for more than this machine has)"
    else:
        import pickle

        text = " ".join(str(exc).split()) or type(exc).__name__
        known = isinstance(exc, (ValueError, OSError, pickle.UnpicklingError))   # the library's own, naming the input
        if not known:
            text = f"{type(exc).__name__}: {text}"
    hint = "" if known else " (DIFFPOSE_FAST_TRACEBACK=1 shows where)"
    return (text if len(text) <= 400 else text[:397] + "...") + hint


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
