"""export a converted dataset to another tool's layout

Export a dataset made by `weakseg convert brats` so nnU-Net and MONAI open it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# ``weakseg export nnunet CONVERTED DST``: a converted BraTS dataset -> the nnU-Net v2 raw layout.


def add_nnunet_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("converted", type=Path, help="folder made by weakseg convert brats")
    p.add_argument("dst", type=Path, help="output DatasetXXX_Name folder")
    p.add_argument("--include", default="pa", choices=["pa", "all"],
                   help="pa: P and A slices (default); all: every stored slice")
    p.add_argument("--overwrite", action="store_true", help="replace DST when it exists")


def run_nnunet(args: argparse.Namespace) -> int:
    from weakseg.data.brats.export import export_nnunet

    report = export_nnunet(args.converted, args.dst, include=args.include, overwrite=args.overwrite)
    print(json.dumps(report))
    return 0


VERBS_METAVAR = "TARGET"
VERBS = {
    "nnunet": ("nnU-Net v2 raw layout, one 2D case per hemisphere slice",
               "Write DST (e.g. Dataset501_BraTSHemi) in the nnU-Net v2 raw layout: train and valid slices in "
               "imagesTr/labelsTr (splits_final.json keeps them apart), test slices in imagesTs (labels in "
               "labelsTs); label statuses in dataset.json's weakseg block (A -> absent, unlabelled P -> present, "
               "labels filled with 'ignore').",
               add_nnunet_arguments, run_nnunet),
}
