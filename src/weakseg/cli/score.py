"""score predicted label maps against references (Dice, HD95)

Score every reference NIfTI in GT_DIR against the same-named prediction in PRED_DIR: per case and class Dice,
IoU, TP/FP/FN, HD95 (mm, MONAI, with the voxel spacing). Empty cases follow an explicit policy (written into
the JSON): a false alarm or a miss scores Dice 0 and HD95 = the volume diagonal; both empty is excluded and
counted (or --both-empty one). Healthy cases are scored.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred_dir", type=Path, help="folder of predicted label maps (NIfTI, e.g. from weakseg predict)")
    p.add_argument("gt_dir", type=Path, help="folder of reference label maps with the same file names")
    p.add_argument("--out", type=Path, default=None, help="summary JSON (default PRED_DIR/summary.json); "
                                                          "the per-case CSV goes beside it")
    p.add_argument("--labels", default=None,
                   help='JSON object of class name -> label value, e.g. \'{"tumour": 1}\' (default: dataset.json '
                        "of GT_DIR or its parent, else the values found)")
    p.add_argument("--both-empty", default="exclude", choices=["exclude", "one"], help="Dice when both are empty")
    p.add_argument("--hd-one-empty", default="diagonal", choices=["diagonal", "nan"],
                   help="HD95 for a miss or false alarm")
    p.add_argument("--assd", action="store_true", help="also average symmetric surface distance")
    p.add_argument("--statuses", type=Path, default=None,
                   help="per-case label status of the references: JSON {case: {class: status}} or CSV "
                        "case,class,status (e.g. labelsTs_status.json of weakseg merge); classes whose status "
                        "is unknown or present are not scored (default: every class is annotated)")


def run(args: argparse.Namespace) -> int:
    from weakseg.errors import WeaksegError
    from weakseg.metrics import EmptyCasePolicy, score_folders, write_summary

    labels = None
    if args.labels:
        try:
            labels = json.loads(args.labels)
        except json.JSONDecodeError:
            raise WeaksegError(f'--labels {args.labels!r} is not JSON; write e.g. --labels \'{{"tumour": 1}}\'') from None
    policy = EmptyCasePolicy(dice_both_empty=args.both_empty, hd_one_empty=args.hd_one_empty)
    statuses = None
    if args.statuses is not None:
        from weakseg.data.merge import read_status_table

        statuses = read_status_table(args.statuses)
    summary = score_folders(args.pred_dir, args.gt_dir, labels=labels, policy=policy, compute_assd=args.assd,
                            statuses=statuses)
    out = args.out or args.pred_dir / "summary.json"
    write_summary(summary, out, out.with_suffix(".csv"))
    names = summary.get("weakseg", {}).get("labels", {})
    for key, values in summary["mean"].items():
        name = f"{names[key]} ({key})" if names.get(key) not in (None, key) else key
        print(f"class {name}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in values.items()))
    print(f"foreground mean: {summary['foreground_mean']}")
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0
