"""train and evaluate on the embedded cluttered-MNIST digits (about 10 min)

``weakseg demo``: the main job on the embedded MNIST digits, end to end, on a CPU in minutes; the work is
``weakseg.reproduce.demo.run_demo`` (estimate, training, evaluation, pictures, table), this module adds the
command line and the command that resumes an interrupted demo.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

# The demo's settings, figures and estimate (also reachable as weakseg.cli.demo.<name>).
from weakseg.reproduce.demo import (BENCH_FILE, DEMO_METHODS, DEMO_STEPS, READINGS, estimate_line,  # noqa: F401
                                    estimate_seconds, load_bench)

DEMO_OUT = Path("runs/demo")

DESCRIPTION = ("Train seg-only, the AE baseline and GenSeg briefly on mnist48_simple (embedded 5,000 MNIST "
               "digits, 1% labelled, one labelled image per batch), evaluate on the test split, print a table "
               "and write pictures. Prints an estimate first (from results/bench_demo.json) and progress lines "
               "with steps/s and ETA. A finished run in --out is reused; an interrupted one resumes when the "
               "same command (or `make demo`) runs again.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=DEMO_OUT, help="folder for the demo runs (one folder per method)")
    p.add_argument("--steps", type=int, default=DEMO_STEPS, help="training steps per method")
    p.add_argument("--methods", nargs="+", default=list(DEMO_METHODS), help="methods to compare")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every method")


def run(args: argparse.Namespace) -> int:
    from weakseg.reproduce.demo import run_demo

    rows = run_demo(args.out, steps=args.steps, methods=args.methods, overrides=args.overrides,
                    resume_hint=f"run `make demo` again, or {resume_command(args)}: the demo continues from "
                                "that checkpoint")
    print(f"\nfinished: {len(rows)} methods; table and times in {args.out / 'demo_summary.json'}")
    print("pictures (P images: image, translations, probability, prediction vs ground truth; A images):")
    for row in rows:
        print(f"  {row['method']:<14} {row['pictures']}/test_P.png and test_A.png")
    print(f"run folders with eval_test.json, metrics.jsonl and TensorBoard logs (tb/): {args.out}/<method>/")
    return 0


def resume_command(args: argparse.Namespace) -> str:
    """The ``weakseg demo`` command that continues this demo (options only where they differ from defaults)."""
    argv = ["weakseg", "demo"]
    if Path(args.out) != DEMO_OUT:
        argv += ["--out", str(args.out)]
    if args.steps != DEMO_STEPS:
        argv += ["--steps", str(args.steps)]
    if list(args.methods) != list(DEMO_METHODS):
        argv += ["--methods", *args.methods]
    for item in args.overrides:
        argv += ["--set", item]
    return f"`{shlex.join(argv)}`"
