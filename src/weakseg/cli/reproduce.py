"""``weakseg reproduce mnist|...``: paper tables, incremental and resumable."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("reproduce", help="reproduce a published table (incremental, resumable)",
                       description="Train every (preset, method, seed) of a table that has no stored result "
                                   "yet, evaluate it on the test split, and rebuild the table from all stored "
                                   "results (missing cells are marked).")
    which = p.add_subparsers(dest="table", metavar="TABLE")
    which.required = True
    m = which.add_parser("mnist", help="cluttered-MNIST table (GenSeg and baselines)")
    from weakseg.reproduce.mnist import METHODS, PRESETS, SCALES
    m.add_argument("--preset", default="quick", choices=sorted(SCALES),
                   help="scale: quick (reduced width, CPU hours) or full (published widths, GPU)")
    m.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    m.add_argument("--datasets", nargs="+", default=list(PRESETS), choices=PRESETS, help="data presets to run")
    m.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    m.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for every run (recorded in each result)")
    m.add_argument("--redo", action="store_true", help="retrain runs that already have a result")
    m.add_argument("--runs-root", type=Path, default=Path("runs/reproduce"), help="training folders")
    m.add_argument("--results", type=Path, default=Path("results"), help="where results are written")
    m.add_argument("--table-only", action="store_true", help="only rebuild the table from stored results")
    m.set_defaults(run=run_mnist)


def _evaluate(run_dir: Path, spec: Any) -> dict[str, Any]:
    from weakseg.inference.report import evaluate_run
    best = evaluate_run(run_dir, split="test", which="best")
    last = evaluate_run(run_dir, split="test", which="last", write=False)
    return {"test_best": best["metrics"], "test_last": last["metrics"], "selection": best["selection"]}


def run_mnist(args: argparse.Namespace) -> int:
    from weakseg.metrics.jsonio import atomic_write_json
    from weakseg.reproduce import mnist
    from weakseg.reproduce.provenance import provenance
    from weakseg.reproduce.runner import load_results, run_grid

    name = f"mnist_{args.preset}"
    results_dir = args.results / name
    specs = mnist.grid(args.preset, presets=tuple(args.datasets), methods=tuple(args.methods),
                       seeds=tuple(args.seeds), extra_overrides=tuple(args.overrides))
    command = "weakseg " + " ".join(sys.argv[1:])
    if not args.table_only:
        run_grid(specs, runs_root=args.runs_root / name, results_dir=results_dir, redo=args.redo,
                 evaluate=_evaluate, command=command)
    summary = mnist.summarise(results_dir)
    table = mnist.table_markdown(summary, scale=args.preset)
    figure = _figure(args, name)
    atomic_write_json(args.results / f"{name}.json", {
        "table": name, "scale": args.preset, "scale_settings": mnist.SCALES[args.preset],
        "summary": summary, "published": mnist.PUBLISHED, "figure": figure,
        "runs": load_results(results_dir), "provenance": provenance(command)})
    (args.results / f"{name}.md").write_text(table + (f"\n![translations]({Path(figure).name})\n" if figure else ""))
    print(table)
    print(f"wrote {args.results / f'{name}.json'} and {args.results / f'{name}.md'}")
    return 0


def _figure(args: argparse.Namespace, name: str) -> str | None:
    """Translation panels of the first GenSeg run found (seed 0 preferred), copied next to the table."""
    from weakseg.cli.show import show_run
    for preset in args.datasets:
        run_dir = args.runs_root / name / preset / "genseg" / "seed0"
        if (run_dir / "checkpoints" / "best.pt").is_file():
            paths = show_run(run_dir, split="test", n=6)
            target = args.results / f"{name}_{preset}_translations.png"
            shutil.copyfile(paths[0], target)
            shutil.copyfile(paths[1], args.results / f"{name}_{preset}_translations_A.png")
            return str(target)
    return None
