"""``weakseg demo``: the main job on the embedded MNIST digits, end to end, on a CPU in minutes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEMO_METHODS = ("seg_only",)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="train and evaluate on the embedded cluttered-MNIST digits",
                       description="Train each demo method briefly on mnist48_simple (embedded 5,000 MNIST "
                                   "digits, 1%% labelled), evaluate on the test split and print a table. "
                                   "A finished run in --out is reused; an interrupted one resumes.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for the demo runs")
    p.add_argument("--steps", type=int, default=400, help="training steps per method")
    p.add_argument("--methods", nargs="+", default=list(DEMO_METHODS), help="methods to compare")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every method")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from weakseg.config import load_config
    from weakseg.config.io import resolve_config_path
    from weakseg.inference.report import evaluate_run
    from weakseg.training.checkpoint import load_checkpoint
    from weakseg.training.loop import fit

    rows = []
    for method in args.methods:
        config = resolve_config_path(f"mnist/mnist48_simple_{method}")
        cfg = load_config(config, [f"train.steps={args.steps}",
                                   f"train.eval_every={max(1, args.steps // 4)}",
                                   f"train.checkpoint_every={max(1, args.steps // 4)}", *args.overrides])
        run_dir = args.out / method
        last = run_dir / "checkpoints" / "last.pt"
        done = last.is_file() and int(load_checkpoint(last)["step"]) >= cfg.train.steps
        if not done:
            print(f"training {method} for {cfg.train.steps} steps -> {run_dir}")
            fit(cfg, run_dir, resume=last.is_file())
        report = evaluate_run(run_dir, split="test")
        m = report["metrics"]
        rows.append((method, m["dice_per_image"]["mean"], m["dice_hard_global"], m["dice_soft_global"],
                     m["fp_image_rate"], m["fp_area"]))

    print("\ncluttered MNIST (mnist48_simple, embedded digits, 1% labelled), test split:")
    print(f"{'method':<16}{'dice/image':>12}{'dice hard':>12}{'dice soft':>12}{'FP img rate':>13}{'FP area':>10}")
    for name, dpi, dh, ds, fpr, fpa in rows:
        print(f"{name:<16}{_f(dpi):>12}{_f(dh):>12}{_f(ds):>12}{_f(fpr):>13}{_f(fpa):>10}")
    print(f"\nrun folders, eval_test.json and TensorBoard logs: {args.out}/<method>/")
    return 0


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
