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

    from weakseg.reproduce import organs
    o = which.add_parser("organs", help="missing organ annotations: SMILE, SMILEr and baselines on the phantom")
    o.add_argument("--preset", default="quick", choices=sorted(organs.SCALES),
                   help="quick (the original grid: phantom v1, one-map head), quick2 (issue 21: phantom v2, "
                        "the wide head, marginal + exclusion, both oracles; CPU hours) or full (32x128x128, GPU)")
    o.add_argument("--folds", type=int, nargs="+", default=list(organs.FOLDS))
    o.add_argument("--alphas", type=float, nargs="+", default=list(organs.ALPHAS))
    o.add_argument("--methods", nargs="+", default=None, choices=organs.METHODS,
                   help="methods to train (default: the scale's grid)")
    o.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for every run (recorded in each result)")
    o.add_argument("--redo", action="store_true", help="retrain runs that already have a result")
    o.add_argument("--runs-root", type=Path, default=Path("runs/reproduce"), help="training folders and data")
    o.add_argument("--results", type=Path, default=Path("results"), help="where results are written")
    o.add_argument("--table-only", action="store_true", help="only rebuild the table from stored results")
    o.set_defaults(run=run_organs)


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
    found = mnist.claims(summary)
    table = mnist.table_markdown(summary, scale=args.preset) + "\n" + mnist.claims_markdown(found)
    figure = _figure(args, name)
    atomic_write_json(args.results / f"{name}.json", {
        "table": name, "scale": args.preset, "scale_settings": mnist.SCALES[args.preset],
        "summary": summary, "claims": found, "published": mnist.PUBLISHED, "figure": figure,
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


def run_organs(args: argparse.Namespace) -> int:
    from weakseg.metrics.jsonio import atomic_write_json
    from weakseg.relabel.rounds import fit_any
    from weakseg.reproduce import organs
    from weakseg.reproduce.provenance import provenance
    from weakseg.reproduce.runner import load_results, run_grid

    name = f"organs_{args.preset}"
    results_dir = args.results / name
    runs_root = args.runs_root / name
    command = "weakseg " + " ".join(sys.argv[1:])
    alphas, folds = tuple(args.alphas), tuple(args.folds)
    grid_methods = organs.scale_methods(args.preset)
    if not args.table_only:
        specs = organs.grid(args.preset, runs_root, runs_root, alphas=alphas,
                            methods=tuple(args.methods) if args.methods else grid_methods, folds=folds,
                            extra_overrides=tuple(args.overrides))
        run_grid(specs, runs_root=runs_root, results_dir=results_dir, redo=args.redo,
                 evaluate=organs.evaluate_spec, command=command, trainer=fit_any)
    summary = organs.summarise(results_dir)
    found = organs.claims(summary)
    runs = load_results(results_dir)
    cost = {"runs": len(runs), "wall_time_min_sum": round(sum(r.get("wall_time_s", 0.0) for r in runs) / 60, 1)}
    table = (organs.table_markdown(summary, scale=args.preset, methods=grid_methods) + "\n"
             + organs.claims_markdown(found)
             + f"\nCost: {cost['runs']} stored runs, {cost['wall_time_min_sum']} minutes of training and scoring "
               "(sum of per-run wall times; one thread per run).\n")
    fig_alpha = 0.7 if 0.7 in alphas else alphas[0]
    fig = organs.figure(runs_root, args.results / f"{name}_slices.png", alpha=fig_alpha, fold=folds[0])
    phantom_png = None
    if organs.SCALES[args.preset]["phantom"].get("preset", "v1") != "v1":     # the v1 picture predates this
        dataset = organs.prepare_data(runs_root, args.preset)
        preset = organs.SCALES[args.preset]["phantom"]["preset"]
        phantom_png = organs.phantom_figure(dataset, args.results / f"{name}_phantom.png",
                                            name=f"phantom {preset} of scale {args.preset}")
    atomic_write_json(args.results / f"{name}.json", {
        "table": name, "scale": args.preset, "scale_settings": organs.SCALES[args.preset],
        "grid": {"alphas": list(organs.ALPHAS), "methods": list(grid_methods), "folds": list(organs.FOLDS)},
        "summary": summary, "claims": found, "cost": cost, "figure": str(fig) if fig else None,
        "phantom_figure": str(phantom_png) if phantom_png else None,
        "runs": runs, "provenance": provenance(command)})
    (args.results / f"{name}.md").write_text(
        table + (f"\n![slices]({Path(fig).name})\n" if fig else "")
        + (f"\n![phantom]({Path(phantom_png).name})\n" if phantom_png else ""))
    print(table)
    print(f"wrote {args.results / f'{name}.json'} and {args.results / f'{name}.md'}")
    return 0
