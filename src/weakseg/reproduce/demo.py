"""The demo: the main job on the embedded MNIST digits, end to end, on a CPU in minutes (``weakseg demo``).

Before training it prints an estimate from the measured figures in ``results/bench_demo.json``; training
shows a bar on a terminal and progress lines (steps/s, ETA) in a log file; an interrupted demo resumes
when run again; the end is a table with a one-line reading of each column. ``OUT/demo_summary.json`` keeps
the per-method times (``benchmarks/bench_demo.py`` stores them as the next estimate's figures).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEMO_METHODS = ("seg_only", "ae", "genseg")
DEMO_STEPS = 800
PRESET = "mnist48_simple"
BENCH_FILE = Path(__file__).resolve().parents[3] / "results" / "bench_demo.json"

# One line per column of the final table: what the number means and which way is better.
READINGS = (
    ("dice/image", "hard Dice (probability > 0.5) of each P test image, averaged: 1 = every digit outlined exactly"),
    ("dice hard", "Dice of all P test pixels pooled together (probability > 0.5)"),
    ("dice soft", "pooled Dice on the probabilities themselves: the paper's metric (column 'published')"),
    ("published", "the paper's soft Dice at 1% labels (full MNIST, 3 runs, many more steps): the direction, "
                  "not the level, is what the demo can show"),
    ("FP img rate", "healthy (A) test images with at least one predicted pixel: 1.000 = a few false-positive "
                    "pixels on nearly every healthy image (the red pixels of test_A.png); lower is better"),
    ("FP area", "mean share of a healthy image's pixels predicted: how much is falsely painted (0.02 = 2%)"),
)


def run_demo(out: Path, *, steps: int = DEMO_STEPS, methods: Sequence[str] = DEMO_METHODS,
             overrides: Sequence[str] = (), resume_hint: str = "") -> list[dict[str, Any]]:
    """Train (or resume, or reuse) each method for ``steps`` into ``out/<method>``, evaluate it on the test split,
    draw its pictures and write ``out/demo_summary.json``; prints the estimate, progress and the final table.

    ``resume_hint`` is added to an interruption's message (the command that continues the demo). Returns
    the table's rows.
    """
    from weakseg.config import load_config
    from weakseg.config.io import resolve_config_path
    from weakseg.inference.report import evaluate_run
    from weakseg.inference.show import show_run
    from weakseg.metrics.jsonio import atomic_write_json
    from weakseg.training.checkpoint import load_checkpoint
    from weakseg.training.loop import fit
    from weakseg.training.signals import TrainingInterrupted

    plans = []
    for method in methods:
        cfg = load_config(resolve_config_path(f"mnist/{PRESET}_{method}"),
                          [f"train.steps={steps}", "train.min_labeled_per_batch=1",
                           f"train.eval_every={max(1, steps // 4)}",
                           f"train.checkpoint_every={max(1, steps // 4)}", *overrides])
        last = out / method / "checkpoints" / "last.pt"
        done_steps = int(load_checkpoint(last)["step"]) if last.is_file() else 0
        plans.append((method, cfg, done_steps))
    print(estimate_line([(m, cfg.train.steps - min(done, cfg.train.steps)) for m, cfg, done in plans],
                        load_bench(BENCH_FILE)), flush=True)

    rows, timings = [], {}
    for method, cfg, done_steps in plans:
        run_dir = out / method
        t0 = time.time()
        if done_steps < cfg.train.steps:
            print(f"training {method}: steps {done_steps}->{cfg.train.steps} -> {run_dir}", flush=True)
            try:
                fit(cfg, run_dir, resume=done_steps > 0)
            except TrainingInterrupted as stop:
                raise stop.with_hint(resume_hint) from None
        else:
            print(f"{method}: reusing the finished run in {run_dir}", flush=True)
        t1 = time.time()
        report = evaluate_run(run_dir, split="test")
        pictures = show_run(run_dir, split="test", n=6)
        t2 = time.time()
        m = report["metrics"]
        timings[method] = {"steps": cfg.train.steps, "train_s": round(t1 - t0, 1), "eval_s": round(t2 - t1, 1),
                           "trained_steps": cfg.train.steps - min(done_steps, cfg.train.steps)}
        rows.append({"method": method, "dice_per_image": m["dice_per_image"]["mean"],
                     "dice_hard_global": m["dice_hard_global"], "dice_soft_global": m["dice_soft_global"],
                     "fp_image_rate": m["fp_image_rate"], "fp_area": m["fp_area"], "n_p": m.get("n_p"),
                     "n_a": m.get("n_a"), "pictures": str(pictures[0].parent)})
        print(f"{method}: test split evaluated and pictures drawn in {timings[method]['eval_s']:.0f} s", flush=True)

    atomic_write_json(out / "demo_summary.json", {"preset": PRESET, "steps": steps,
                                                   "overrides": list(overrides), "timings": timings,
                                                   "rows": rows})
    print()
    print(summary_table(rows))
    return rows


def load_bench(path: Path) -> dict[str, Any] | None:
    """The measured demo figures (``benchmarks/bench_demo.py``), or None when this install has no results/."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def estimate_seconds(todo: list[tuple[str, int]], bench: dict[str, Any]) -> float | None:
    """Seconds to train ``todo`` [(method, steps left)] and evaluate every method, scaled from the measurement.

    Per-method figures (``timings`` of a ``demo_summary.json``) are used where the benchmark has them; else
    its total wall time is shared equally by its methods and steps.
    """
    per_method = bench.get("timings") or {}
    total, n_methods = bench.get("wall_time_s"), len(bench.get("methods") or DEMO_METHODS)
    steps = bench.get("steps") or DEMO_STEPS
    seconds = 0.0
    for method, left in todo:
        t = per_method.get(method)
        if t and t.get("trained_steps"):
            seconds += t["train_s"] / t["trained_steps"] * left + t.get("eval_s", 0.0)
        elif total:
            share = total / n_methods
            seconds += share * left / steps if left else 0.1 * share     # a reused run is evaluated only
        else:
            return None
    return seconds


def estimate_line(todo: list[tuple[str, int]], bench: dict[str, Any] | None) -> str:
    if all(left == 0 for _, left in todo):
        return "estimate: every run is finished; evaluating and drawing only (about a minute)"
    seconds = estimate_seconds(todo, bench) if bench else None
    work = ", ".join(f"{m} {left} steps" for m, left in todo if left)
    if seconds is None:
        return f"estimate: no measured figures found ({BENCH_FILE.name}); training {work}; progress lines give an ETA"
    machine = (bench.get("machine") or {})
    where = f"{machine.get('cpu_count', '?')}-core CPU" if not machine.get("gpu") else machine["gpu"]["name"]
    return (f"estimate: about {max(1, round(seconds / 60))} min ({work}), from {where} measurements of "
            f"{str(bench.get('date', '?'))[:10]} in results/{BENCH_FILE.name}; a busier or slower machine takes "
            "longer. Ctrl-C is safe: run the same command again to resume")


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The demo's results with the published soft Dice beside ours and a reading of every column."""
    from weakseg.reproduce.mnist import PUBLISHED

    n_p = next((r["n_p"] for r in rows if r.get("n_p")), "?")
    n_a = next((r["n_a"] for r in rows if r.get("n_a")), "?")
    lines = [f"cluttered MNIST ({PRESET}, embedded digits, 1% labelled), test split: {n_p} P images (a digit to "
             f"segment) and {n_a} A images (healthy: clutter only)",
             f"{'method':<12}{'dice/image':>11}{'dice hard':>11}{'dice soft':>11}{'published':>11}"
             f"{'FP img rate':>13}{'FP area':>9}"]
    for r in rows:
        published = PUBLISHED.get(PRESET, {}).get(r["method"])
        lines.append(f"{r['method']:<12}{_f(r['dice_per_image']):>11}{_f(r['dice_hard_global']):>11}"
                     f"{_f(r['dice_soft_global']):>11}{_f(published[0] if published else None):>11}"
                     f"{_f(r['fp_image_rate']):>13}{_f(r['fp_area']):>9}")
    lines.append("reading the columns:")
    lines += [f"  {name:<12} {text}" for name, text in READINGS]
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
