"""reproduce a published table (incremental, resumable)

Train every (preset, method, seed) of a table that has no stored result yet, evaluate it on the test split,
and rebuild the table from all stored results (missing cells are marked).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# ``weakseg reproduce mnist|organs``: paper tables, incremental and resumable.


def add_mnist_arguments(m: argparse.ArgumentParser) -> None:
    from weakseg.reproduce.mnist import ALL_PRESETS, METHODS, SCALES
    m.add_argument("--preset", default="quick", choices=sorted(SCALES),
                   help="scale: quick (design presets, reduced width, CPU hours), medium (the *_v2 presets: the "
                        "paper's 59,500 canvases with 1%% labelled, reduced width, about an hour per GenSeg run on "
                        "one thread) or full (published widths, GPU)")
    m.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds per (preset, method)")
    m.add_argument("--datasets", "--presets", dest="datasets", nargs="+", default=None, choices=ALL_PRESETS,
                   help="data presets to run (default: the scale's own, e.g. mnist48_simple_v2 mnist48_hard_v2 "
                        "for medium)")
    m.add_argument("--methods", nargs="+", default=None, choices=METHODS, help="default: the scale's own")
    _add_grid_arguments(m, runs_root_help="training folders")


def add_organs_arguments(o: argparse.ArgumentParser) -> None:
    from weakseg.reproduce import organs
    o.add_argument("--preset", default="quick", choices=sorted(organs.SCALES),
                   help="quick (the original grid: phantom v1, one-map head), quick2 (phantom v2, "
                        "the wide head, marginal + exclusion, both oracles; CPU hours) or full (32x128x128, GPU)")
    o.add_argument("--folds", type=int, nargs="+", default=list(organs.FOLDS), help="cross-validation folds to run")
    o.add_argument("--alphas", type=float, nargs="+", default=list(organs.ALPHAS),
                   help="missing-annotation rates alpha to run")
    o.add_argument("--methods", nargs="+", default=None, choices=organs.METHODS,
                   help="methods to train (default: the scale's grid)")
    _add_grid_arguments(o, runs_root_help="training folders and data")


def _add_grid_arguments(p: argparse.ArgumentParser, *, runs_root_help: str) -> None:
    """The options every table shares: extra overrides, redo, where runs and results go, table only."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for every run (recorded in each result)")
    p.add_argument("--redo", action="store_true", help="retrain runs that already have a result")
    p.add_argument("--runs-root", type=Path, default=Path("runs/reproduce"), help=runs_root_help)
    p.add_argument("--results", type=Path, default=Path("results"), help="where results are written")
    p.add_argument("--table-only", action="store_true", help="only rebuild the table from stored results")


def run_mnist(args: argparse.Namespace) -> int:
    from weakseg.reproduce.tables import reproduce_mnist

    table = reproduce_mnist(args.preset, datasets=args.datasets, methods=args.methods, seeds=args.seeds,
                            overrides=args.overrides, redo=args.redo, runs_root=args.runs_root,
                            results=args.results, table_only=args.table_only, command=_command())
    return _report(table, args.results / f"mnist_{args.preset}")


def run_organs(args: argparse.Namespace) -> int:
    from weakseg.cli.train import train_run
    from weakseg.reproduce.tables import reproduce_organs

    table = reproduce_organs(args.preset, folds=args.folds, alphas=args.alphas, methods=args.methods,
                             overrides=args.overrides, redo=args.redo, runs_root=args.runs_root,
                             results=args.results, table_only=args.table_only, command=_command(),
                             trainer=train_run)
    return _report(table, args.results / f"organs_{args.preset}")


def _command() -> str:
    """The command line as typed, recorded in every result's provenance."""
    return "weakseg " + " ".join(sys.argv[1:])


def _report(table: str, stem: Path) -> int:
    print(table)
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")
    return 0


VERBS_METAVAR = "TABLE"
VERBS = {
    "mnist": ("cluttered-MNIST table (GenSeg and baselines)", None, add_mnist_arguments, run_mnist),
    "organs": ("missing organ annotations: SMILE, SMILEr and baselines on the phantom", None,
               add_organs_arguments, run_organs),
}
