"""The ``explorer`` command line: one sub-command per step, each registered by a module of this package."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from explorer import __version__
from explorer.errors import ExplorerError

COMMAND_MODULES = ("data_cmds", "model_cmds", "analysis_cmds", "label_cmds", "export_cmds", "serve_cmd")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="explorer",
        description="Explore survey objects (cutouts, light curves) through self-supervised embeddings.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"explorer.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"explorer.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for input the user can fix)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    warnings.showwarning = _show_warning
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("faiss", "distributed", "numba", "bokeh", "tornado"):  # our INFO lines, not theirs
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ExplorerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("EXPLORER_DEBUG"):
            raise
        print(f"error: unexpected {type(err).__name__}: {err} (set EXPLORER_DEBUG=1 for the traceback, "
              "and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
