"""``weakseg`` command line: one entry point, one module per verb.

Exit status: 0 done; 2 bad input (``WeaksegError``) or an environment failure such as a full disk or
a read-only folder (``OSError``), printed as one line without a traceback; 130 / 143 a training run
stopped by SIGINT / SIGTERM after writing a resumable checkpoint (128 + the signal number); 1 a bug
(traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from weakseg import __version__
from weakseg.errors import WeaksegError
from weakseg.training.signals import TrainingInterrupted

# One module per verb: its docstring's first line is the verb's --help line, the rest (or a DESCRIPTION
# constant) its description; add_arguments(parser) declares its options and run(args) -> int does the work.
# A verb with sub-verbs declares VERBS = {name: (help, description, add_arguments, run)} and VERBS_METAVAR
# instead; build_parser wires both the same way.
COMMANDS = ("train", "evaluate", "show", "predict", "score", "convert", "export", "check", "simulate-missing",
            "merge", "status", "reproduce", "demo")


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help, except where the default says nothing (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Every (sub)command's parser shows option defaults in --help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="weakseg", description="Segmentation from weak labels: GenSeg (presence/absence translation) and "
                                    "SMILE/SMILEr (missing annotations).")
    parser.add_argument("--version", action="version", version=f"weakseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"weakseg.cli.{name.replace('-', '_')}")
        first, _, rest = (module.__doc__ or "").strip().partition("\n")
        description = getattr(module, "DESCRIPTION", rest.strip() or None)
        verbs = getattr(module, "VERBS", None)
        if verbs is None:
            _add_verb(sub, name, first.strip(), description, module.add_arguments, module.run)
            continue
        group = sub.add_parser(name, help=first.strip(), description=description)
        inner = group.add_subparsers(dest=module.VERBS_METAVAR.lower(), metavar=module.VERBS_METAVAR)
        inner.required = True
        for verb, (help_line, verb_description, add_arguments, run) in verbs.items():
            _add_verb(inner, verb, help_line, verb_description, add_arguments, run)
    return parser


def _add_verb(sub: Any, name: str, help_line: str, description: str | None,
              add_arguments: Callable[[argparse.ArgumentParser], None],
              run: Callable[[argparse.Namespace], int]) -> None:
    p = sub.add_parser(name, help=help_line, description=description)
    add_arguments(p)
    p.set_defaults(run=run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return int(args.run(args) or 0)
    except WeaksegError as err:
        print(f"weakseg {args.command}: error: {err}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        print(f"weakseg {args.command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except OSError as err:   # disk full, read-only or vanished folder: the environment, not a bug
        where = f"{err.filename}: " if err.filename else ""
        print(f"weakseg {args.command}: error: {where}{err.strerror or err}; free disk space, make the folder "
              "writable or choose another output folder, then run again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"weakseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
