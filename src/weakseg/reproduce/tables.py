"""Build a reproduced table end to end: train what has no stored result, then summarise, write and draw.

``weakseg reproduce mnist|organs`` calls ``reproduce_mnist`` / ``reproduce_organs``; each returns the table's
markdown and writes ``RESULTS/<name>.json`` (summary, claims, runs, provenance) and ``RESULTS/<name>.md``
(the table with its pictures) next to the pictures.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from weakseg.errors import WeaksegError
from weakseg.metrics.jsonio import atomic_write_json
from weakseg.reproduce.provenance import provenance
from weakseg.reproduce.runner import RunSpec, load_results, run_data_info, run_grid


def reproduce_mnist(preset: str, *, datasets: Sequence[str] | None, methods: Sequence[str] | None,
                    seeds: Sequence[int], overrides: Sequence[str], redo: bool, runs_root: Path, results: Path,
                    table_only: bool, command: str) -> str:
    """The cluttered-MNIST table of scale ``preset`` (datasets and methods default to the scale's own)."""
    from weakseg.reproduce import mnist

    name = f"mnist_{preset}"
    results_dir = results / name
    scale = mnist.SCALES[preset]
    datasets = list(scale["datasets"] if datasets is None else datasets)
    methods = list(scale["methods"] if methods is None else methods)
    if not table_only:
        unknown = [p for p in datasets if p not in scale["steps"]]
        if unknown:
            raise WeaksegError(f"scale {preset} has no step budget for {', '.join(unknown)}; its presets: "
                               f"{', '.join(scale['steps'])}")
        specs = mnist.grid(preset, presets=tuple(datasets), methods=tuple(methods), seeds=tuple(seeds),
                           extra_overrides=tuple(overrides))
        run_grid(specs, runs_root=runs_root / name, results_dir=results_dir, redo=redo, evaluate=_evaluate_mnist,
                 command=command)
    summary = mnist.summarise(results_dir)
    found = mnist.claims(summary, scale=preset)
    data = mnist.data_counts(results_dir)
    runs = load_results(results_dir)
    rows = tuple(m for m in mnist.METHODS if m in scale["methods"] or any(m in cells for cells in summary.values()))
    table = (mnist.table_markdown(summary, scale=preset, data=data, methods=rows) + "\n"
             + mnist.claims_markdown(found, scale=preset))
    figure = _translation_figure(datasets, runs_root / name, results, name)
    curves = mnist.curves_figure(runs, results / f"{name}_curves.png", title=f"cluttered MNIST, {name}")
    write_table(results, name, {
        "table": name, "scale": preset, "scale_settings": scale,
        "summary": summary, "claims": found, "claims_rules": mnist.CLAIMS[preset], "data": data,
        "collapse_rule": {"fp_area_above": mnist.COLLAPSE_FP_AREA, "area_ratio_p_above": mnist.COLLAPSE_AREA_RATIO},
        "translation_started": {"key": mnist.TRANSLATION_KEY, "at_least": mnist.TRANSLATION_STARTED},
        "published": mnist.PUBLISHED, "published_r3": mnist.PUBLISHED_R3, "figure": figure,
        "curves_figure": str(curves) if curves else None, "runs": runs, "provenance": provenance(command)},
        table, {"learning curves": curves, "translations": figure})
    return table


def _evaluate_mnist(run_dir: Path, spec: RunSpec) -> dict[str, Any]:
    """Test-split scores at the best validation checkpoint and at the last one."""
    from weakseg.inference.report import evaluate_run

    best = evaluate_run(run_dir, split="test", which="best")
    last = evaluate_run(run_dir, split="test", which="last", write=False)
    return {"test_best": best["metrics"], "test_last": last["metrics"], "selection": best["selection"],
            "data": run_data_info(run_dir)}


def _translation_figure(datasets: Sequence[str], runs_root: Path, results: Path, name: str) -> str | None:
    """Translation panels of the first GenSeg run found (seed 0 preferred), copied next to the table."""
    from weakseg.inference.show import show_run

    for preset in datasets:
        run_dir = runs_root / preset / "genseg" / "seed0"
        if (run_dir / "checkpoints" / "best.pt").is_file():
            paths = show_run(run_dir, split="test", n=6)
            target = results / f"{name}_{preset}_translations.png"
            shutil.copyfile(paths[0], target)
            shutil.copyfile(paths[1], results / f"{name}_{preset}_translations_A.png")
            return str(target)
    for preset in datasets:             # no training folders here (--table-only elsewhere): keep the picture
        target = results / f"{name}_{preset}_translations.png"
        if target.is_file():
            return str(target)
    return None


def reproduce_organs(preset: str, *, folds: Sequence[int], alphas: Sequence[float], methods: Sequence[str] | None,
                     overrides: Sequence[str], redo: bool, runs_root: Path, results: Path, table_only: bool,
                     command: str, trainer: Callable[..., dict[str, Any]]) -> str:
    """The missing-organ-annotation table of scale ``preset``; ``trainer`` trains one run (the CLI's entry)."""
    from weakseg.reproduce import organs

    name = f"organs_{preset}"
    results_dir = results / name
    runs_root = runs_root / name
    alphas, folds = tuple(alphas), tuple(folds)
    grid_methods = organs.scale_methods(preset)
    if not table_only:
        specs = organs.grid(preset, runs_root, runs_root, alphas=alphas,
                            methods=tuple(methods) if methods else grid_methods, folds=folds,
                            extra_overrides=tuple(overrides))
        run_grid(specs, runs_root=runs_root, results_dir=results_dir, redo=redo,
                 evaluate=organs.evaluate_spec, command=command, trainer=trainer)
    summary = organs.summarise(results_dir)
    found = organs.claims(summary, ablation=organs.ablation_summary(results, preset))
    runs = load_results(results_dir)
    cost = {"runs": len(runs), "wall_time_min_sum": round(sum(r.get("wall_time_s", 0.0) for r in runs) / 60, 1)}
    table = (organs.table_markdown(summary, scale=preset, methods=grid_methods) + "\n"
             + organs.claims_markdown(found)
             + f"\nCost: {cost['runs']} stored runs, {cost['wall_time_min_sum']} minutes of training and scoring "
               "(sum of per-run wall times; one thread per run).\n")
    fig_alpha = 0.7 if 0.7 in alphas else alphas[0]
    fig = organs.figure(runs_root, results / f"{name}_slices.png", alpha=fig_alpha, fold=folds[0])
    phantom_png = None
    if organs.SCALES[preset]["phantom"].get("preset", "v1") != "v1":     # the v1 picture predates this
        dataset = organs.prepare_data(runs_root, preset)
        phantom = organs.SCALES[preset]["phantom"]["preset"]
        phantom_png = organs.phantom_figure(dataset, results / f"{name}_phantom.png",
                                            name=f"phantom {phantom} of scale {preset}")
    write_table(results, name, {
        "table": name, "scale": preset, "scale_settings": organs.SCALES[preset],
        "grid": {"alphas": list(organs.ALPHAS), "methods": list(grid_methods), "folds": list(organs.FOLDS)},
        "summary": summary, "claims": found, "cost": cost, "figure": str(fig) if fig else None,
        "phantom_figure": str(phantom_png) if phantom_png else None,
        "runs": runs, "provenance": provenance(command)},
        table, {"slices": fig, "phantom": phantom_png})
    return table


def write_table(results: Path, name: str, record: dict[str, Any], table: str,
                pictures: dict[str, str | Path | None]) -> None:
    """``results/<name>.json`` (the record) and ``results/<name>.md``: the table, then each picture drawn
    (alt text -> path; a missing picture is left out) by file name, as they sit in the same folder."""
    atomic_write_json(results / f"{name}.json", record)
    (results / f"{name}.md").write_text(
        table + "".join(f"\n![{alt}]({Path(path).name})\n" for alt, path in pictures.items() if path))
