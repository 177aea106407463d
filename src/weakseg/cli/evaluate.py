"""``weakseg evaluate RUN_DIR``: score a trained run on a split, write ``RUN_DIR/eval_<split>.json``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="evaluate a trained run on a split",
                       description="Evaluate a run's best (or last) checkpoint on a split and write "
                                   "RUN_DIR/eval_<split>.json.")
    p.add_argument("run_dir", type=Path, help="a folder made by weakseg train")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"], help="split to score")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from weakseg.inference.report import evaluate_run

    result = evaluate_run(args.run_dir, split=args.split, which=args.checkpoint, device=args.device)
    print(json.dumps(result["metrics"], indent=1))
    print(f"wrote {Path(args.run_dir) / f'eval_{args.split}.json'}")
    return 0
