"""convert BraTS folders, or check an nnU-Net raw dataset

Bring a dataset into weakseg. Every input problem is reported before anything is written; outputs are built
under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# ``weakseg convert brats SRC DST`` and ``weakseg convert nnunet SRC [DST]``: data in, checked, indexed.


def add_brats_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", type=Path, help="BraTS folder (holding HGG/ and LGG/, or subject folders)")
    p.add_argument("dst", type=Path, help="output folder (must not exist unless --overwrite)")
    p.add_argument("--channels", nargs="+", default=None, metavar="MOD",
                   help="modalities in channel order (default: flair t1ce t1 t2, the reference's)")
    p.add_argument("--region", default=None, choices=["whole_tumour", "tumour_core", "enhancing"],
                   help="tumour region segmented: whole_tumour {1,2,4}, tumour_core {1,4} or enhancing {4} "
                        "(default whole_tumour)")
    p.add_argument("--normalization", default=None, choices=["per_modality", "pooled"],
                   help="brain-voxel normalisation per modality or pooled over modalities (default per_modality)")
    p.add_argument("--bias-correction", default=None, choices=["none", "n4"],
                   help="N4 bias-field correction inside the brain, or none (default none)")
    p.add_argument("--no-clip", action="store_true", help="do not clip normalised brain voxels to [-1, 1]")
    p.add_argument("--brain-threshold", type=float, default=None, help="b: brain area / slice area (default 0.25)")
    p.add_argument("--tumour-threshold", type=float, default=None,
                   help="t_area: tumour area / brain area for a P slice (default 0.04)")
    p.add_argument("--midline", default=None, choices=["grid", "brain"],
                   help="hemisphere split at the grid centre or the brain's x-extent centre (default grid)")
    p.add_argument("--flip-x-hi", action="store_true", help="flip the right hemisphere left-right")
    p.add_argument("--labelled-fraction", type=float, default=None,
                   help="fraction of training P slices that keep masks, by whole patient (default 0.01)")
    p.add_argument("--data-seed", type=int, default=None, help="labelled-patient draw (default 0)")
    p.add_argument("--split-seed", type=int, default=None, help="patient split draw (default 0)")
    p.add_argument("--proportions", nargs=3, type=int, default=None, metavar=("TRAIN", "VALID", "TEST"),
                   help="split proportions (default 228 28 29)")
    p.add_argument("--split-file", default=None, help='JSON {"train": [...], "valid": [...], "test": [...]} of ids')
    p.add_argument("--image-dtype", default=None, choices=["float16", "float32"],
                   help="stored image precision (default float16)")
    p.add_argument("--overwrite", action="store_true", help="replace DST when it exists")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def add_nnunet_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", type=Path, help="DatasetXXX_Name folder holding dataset.json")
    p.add_argument("dst", type=Path, nargs="?", default=None, help="index folder (optional)")
    p.add_argument("--headers-only", action="store_true", help="check geometry from headers; skip voxel checks")
    p.add_argument("--overwrite", action="store_true", help="replace DST when it exists")


def run_brats(args: argparse.Namespace) -> int:
    from weakseg.data.brats.convert import BratsConvertOptions, convert_brats

    given = {"channels": args.channels, "region": args.region, "normalization": args.normalization,
             "bias_correction": args.bias_correction, "brain_threshold": args.brain_threshold,
             "tumour_threshold": args.tumour_threshold, "midline": args.midline,
             "labelled_fraction": args.labelled_fraction, "data_seed": args.data_seed,
             "split_seed": args.split_seed, "proportions": args.proportions, "split_file": args.split_file,
             "image_dtype": args.image_dtype}
    opts = {k: v for k, v in given.items() if v is not None}
    if args.no_clip:
        opts["clip"] = False
    if args.flip_x_hi:
        opts["flip_x_hi"] = True
    report = convert_brats(args.src, args.dst, options=BratsConvertOptions(**opts), overwrite=args.overwrite,
                           progress=not args.no_progress and sys.stderr.isatty())   # bars on a terminal only
    print(json.dumps({k: report[k] for k in ("n_subjects", "splits", "labelled_fraction_actual", "seconds")}))
    print(f"wrote {args.dst} (conversion_report.json, index.json, splits.json)")
    return 0


def run_nnunet(args: argparse.Namespace) -> int:
    from weakseg.data.formats.nnunet_raw import convert_nnunet

    report = convert_nnunet(args.src, args.dst, read_voxels=not args.headers_only, overwrite=args.overwrite)
    print(json.dumps({k: report[k] for k in ("n_train", "n_test", "class_names", "status_counts")}))
    print(f"{args.src}: valid nnU-Net v2 raw dataset" + (f"; wrote {args.dst / 'index.json'}" if args.dst else ""))
    return 0


VERBS_METAVAR = "SOURCE"
VERBS = {
    "brats": ("BraTS subject folders -> hemisphere-slice dataset (genseg.md §10)",
              "Convert BraTS subjects (2017 HGG/+LGG/ or 2018-2021 subject folders) into the translation method's "
              "dataset: per-modality normalisation inside the brain, left/right hemispheres from the affine, P/A "
              "axial slices by area fractions, seeded patient-level splits, labelled fraction by whole patient.",
              add_brats_arguments, run_brats),
    "nnunet": ("check an nnU-Net v2 raw dataset and (with DST) write its index",
               "Validate an nnU-Net v2 raw dataset in place (dataset.json keys, channel files, labels, geometry, "
               "NaN/Inf, label statuses of the optional weakseg block); with DST, write DST/index.json listing "
               "the cases and their statuses.",
               add_nnunet_arguments, run_nnunet),
}
