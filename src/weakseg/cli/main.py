"""``weakseg`` command line: one entry point, one module per verb.

Bad input raises ``WeaksegError``; it is printed as one line and the exit status is 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from weakseg import __version__
from weakseg.errors import WeaksegError

# Each module defines add_parser(subparsers) and run(args) -> int.
COMMANDS = ("train", "evaluate", "show", "reproduce", "score", "demo", "simulate-missing")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weakseg", description="Segmentation from weak labels: GenSeg (presence/absence translation) and "
                                    "SMILE/SMILEr (missing annotations).")
    parser.add_argument("--version", action="version", version=f"weakseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"weakseg.cli.{name.replace('-', '_')}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return int(args.run(args) or 0)
    except WeaksegError as err:
        print(f"weakseg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"weakseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
