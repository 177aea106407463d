"""``weakseg demo``: the main job on the embedded MNIST digits, end to end, on a CPU in minutes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEMO_METHODS = ("seg_only", "ae", "genseg")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="train and evaluate on the embedded cluttered-MNIST digits",
                       description="Train seg-only, the AE baseline and GenSeg briefly on mnist48_simple (embedded "
                                   "5,000 MNIST digits, 1% labelled, one labelled image per batch), evaluate on the "
                                   "test split, print a table and write pictures. "
                                   "A finished run in --out is reused; an interrupted one resumes.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for the demo runs")
    p.add_argument("--steps", type=int, default=800, help="training steps per method")
    p.add_argument("--methods", nargs="+", default=list(DEMO_METHODS), help="methods to compare")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every method")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from weakseg.config import load_config
    from weakseg.config.io import resolve_config_path
    from weakseg.inference.report import evaluate_run
    from weakseg.cli.show import show_run
    from weakseg.training.checkpoint import load_checkpoint
    from weakseg.training.loop import fit

    rows = []
    for method in args.methods:
        config = resolve_config_path(f"mnist/mnist48_simple_{method}")
        cfg = load_config(config, [f"train.steps={args.steps}", "train.min_labeled_per_batch=1",
                                   f"train.eval_every={max(1, args.steps // 4)}",
                                   f"train.checkpoint_every={max(1, args.steps // 4)}", *args.overrides])
        run_dir = args.out / method
        last = run_dir / "checkpoints" / "last.pt"
        done = last.is_file() and int(load_checkpoint(last)["step"]) >= cfg.train.steps
        if not done:
            print(f"training {method} for {cfg.train.steps} steps -> {run_dir}")
            fit(cfg, run_dir, resume=last.is_file())
        report = evaluate_run(run_dir, split="test")
        pictures = show_run(run_dir, split="test", n=6)
        m = report["metrics"]
        rows.append((method, m["dice_per_image"]["mean"], m["dice_hard_global"], m["dice_soft_global"],
                     m["fp_image_rate"], m["fp_area"], pictures[0].parent))

    print("\ncluttered MNIST (mnist48_simple, embedded digits, 1% labelled), test split:")
    print(f"{'method':<16}{'dice/image':>12}{'dice hard':>12}{'dice soft':>12}{'FP img rate':>13}{'FP area':>10}")
    for name, dpi, dh, ds, fpr, fpa, _ in rows:
        print(f"{name:<16}{_f(dpi):>12}{_f(dh):>12}{_f(ds):>12}{_f(fpr):>13}{_f(fpa):>10}")
    print("\npictures (P image, translations, prediction vs ground truth; A images):")
    for name, *_, pics in rows:
        print(f"  {name:<14} {pics}/test_P.png and test_A.png")
    print(f"run folders with eval_test.json, metrics.jsonl and TensorBoard logs (tb/): {args.out}/<method>/")
    return 0


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
