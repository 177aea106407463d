"""reproduce a published table (incremental, resumable)

Train every (preset, method, seed) of a table that has no stored result yet, evaluate it on the test split,
and rebuild the table from all stored results (missing cells are marked).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from weakseg.errors import WeaksegError

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
                   help="quick (the original grid: phantom v1, one-map head), quick2 (issue 21: phantom v2, "
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


def _evaluate(run_dir: Path, spec: Any) -> dict[str, Any]:
    from weakseg.inference.report import evaluate_run
    from weakseg.reproduce.runner import run_data_info
    best = evaluate_run(run_dir, split="test", which="best")
    last = evaluate_run(run_dir, split="test", which="last", write=False)
    return {"test_best": best["metrics"], "test_last": last["metrics"], "selection": best["selection"],
            "data": run_data_info(run_dir)}


def run_mnist(args: argparse.Namespace) -> int:
    from weakseg.metrics.jsonio import atomic_write_json
    from weakseg.reproduce import mnist
    from weakseg.reproduce.provenance import provenance
    from weakseg.reproduce.runner import load_results, run_grid

    name = f"mnist_{args.preset}"
    results_dir = args.results / name
    scale = mnist.SCALES[args.preset]
    args.datasets = list(scale["datasets"] if args.datasets is None else args.datasets)
    args.methods = list(scale["methods"] if args.methods is None else args.methods)
    command = "weakseg " + " ".join(sys.argv[1:])
    if not args.table_only:
        unknown = [p for p in args.datasets if p not in scale["steps"]]
        if unknown:
            raise WeaksegError(f"scale {args.preset} has no step budget for {', '.join(unknown)}; its presets: "
                               f"{', '.join(scale['steps'])}")
        specs = mnist.grid(args.preset, presets=tuple(args.datasets), methods=tuple(args.methods),
                           seeds=tuple(args.seeds), extra_overrides=tuple(args.overrides))
        run_grid(specs, runs_root=args.runs_root / name, results_dir=results_dir, redo=args.redo,
                 evaluate=_evaluate, command=command)
    summary = mnist.summarise(results_dir)
    found = mnist.claims(summary, scale=args.preset)
    data = mnist.data_counts(results_dir)
    runs = load_results(results_dir)
    rows = tuple(m for m in mnist.METHODS if m in scale["methods"] or any(m in cells for cells in summary.values()))
    table = (mnist.table_markdown(summary, scale=args.preset, data=data, methods=rows) + "\n"
             + mnist.claims_markdown(found, scale=args.preset))
    figure = _figure(args, name)
    curves = mnist.curves_figure(runs, args.results / f"{name}_curves.png", title=f"cluttered MNIST, {name}")
    atomic_write_json(args.results / f"{name}.json", {
        "table": name, "scale": args.preset, "scale_settings": scale,
        "summary": summary, "claims": found, "claims_rules": mnist.CLAIMS[args.preset], "data": data,
        "collapse_rule": {"fp_area_above": mnist.COLLAPSE_FP_AREA, "area_ratio_p_above": mnist.COLLAPSE_AREA_RATIO},
        "translation_started": {"key": mnist.TRANSLATION_KEY, "at_least": mnist.TRANSLATION_STARTED},
        "published": mnist.PUBLISHED, "published_r3": mnist.PUBLISHED_R3, "figure": figure,
        "curves_figure": str(curves) if curves else None, "runs": runs, "provenance": provenance(command)})
    (args.results / f"{name}.md").write_text(
        table + (f"\n![learning curves]({curves.name})\n" if curves else "")
        + (f"\n![translations]({Path(figure).name})\n" if figure else ""))
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
    for preset in args.datasets:             # no training folders here (--table-only elsewhere): keep the picture
        target = args.results / f"{name}_{preset}_translations.png"
        if target.is_file():
            return str(target)
    return None


def run_organs(args: argparse.Namespace) -> int:
    from weakseg.metrics.jsonio import atomic_write_json
    from weakseg.cli.train import train_run
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
                 evaluate=organs.evaluate_spec, command=command, trainer=train_run)
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


VERBS_METAVAR = "TABLE"
VERBS = {
    "mnist": ("cluttered-MNIST table (GenSeg and baselines)", None, add_mnist_arguments, run_mnist),
    "organs": ("missing organ annotations: SMILE, SMILEr and baselines on the phantom", None,
               add_organs_arguments, run_organs),
}
