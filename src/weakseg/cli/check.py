"""validate a dataset folder and list every problem

Check a dataset before training or converting it: an nnU-Net raw folder (geometry, label values, label-status
block, missing files, NaN voxels, classes never annotated), a BraTS folder, a converted BraTS dataset or a
folder of MNIST IDX files. Exit 0 with a short summary when clean; exit 2 with the full list of problems
otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", type=Path, help="the dataset folder")
    p.add_argument("--kind", default="auto", choices=["auto", "nnunet", "brats", "brats-converted", "mnist"],
                   help="dataset kind (default: detected from the folder)")
    p.add_argument("--overlay", type=Path, default=None,
                   help="nnU-Net only: a status overlay JSON (from simulate-missing) to check and apply")
    p.add_argument("--notes", action="store_true", help="also print notes (non-blocking findings)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from weakseg.data.check import check_dataset

    def progress(items):
        return tqdm(items, desc="checking", leave=False, disable=True if args.no_progress else None)

    report = check_dataset(args.dataset, kind=args.kind, overlay=args.overlay, progress=progress)
    if args.notes:
        for note in report.notes:
            print(f"note: {note}")
    report.raise_if_problems()
    print(f"{args.dataset} ({report.kind}): no problems found"
          + (f", {len(report.notes)} note(s) (--notes to list)" if report.notes and not args.notes else ""))
    for key, value in report.summary.items():
        print(f"  {key}: {json.dumps(value, default=str)}")
    return 0
