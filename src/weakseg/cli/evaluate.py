"""evaluate a trained run on a split

Evaluate a run's best (or last) checkpoint on a split and write RUN_DIR/eval_<split>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a folder made by weakseg train")
    p.add_argument("--split", default="valid", choices=["train", "valid", "test"], help="split to score")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--references", type=Path, default=None,
                   help="organs runs: a folder of FULL reference label maps (<case>.nii.gz, the training "
                        "dataset's label values); the split's volumes are predicted as weakseg predict does and "
                        "scored on every organ (default: only the organs annotated in the training labels)")
    p.add_argument("--out", type=Path, default=None,
                   help="with --references: output folder (default RUN_DIR/eval_<split>_references)")
    p.add_argument("--overwrite", action="store_true", help="with --references: replace the output folder")


def run(args: argparse.Namespace) -> int:
    from weakseg.inference.report import evaluate_run

    if args.references is not None:
        return _run_references(args)

    result = evaluate_run(args.run_dir, split=args.split, which=args.checkpoint, device=args.device)
    print(json.dumps(result["metrics"], indent=1))
    print(f"wrote {Path(args.run_dir) / f'eval_{args.split}.json'}")
    return 0


def _run_references(args: argparse.Namespace) -> int:
    from weakseg.inference.evaluate_references import evaluate_against_references

    summary = evaluate_against_references(args.run_dir, args.references, split=args.split, which=args.checkpoint,
                                          device=args.device, out=args.out, overwrite=args.overwrite)
    names = summary["weakseg"]["labels"]
    for key, values in summary["mean"].items():
        print(f"{names.get(key, key)}: Dice {_fmt(values['Dice'])}, HD95 {_fmt(values['HD95'])} mm")
    print(f"foreground mean Dice {_fmt(summary['foreground_mean']['Dice'])}")
    out = args.out or args.run_dir / f"eval_{args.split}_references"
    print(f"wrote {out / 'summary.json'}, {out / 'summary.csv'} and the predictions")
    return 0


def _fmt(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) and v == v else "null"
