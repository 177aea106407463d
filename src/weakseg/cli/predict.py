"""predict label maps for BraTS subjects or nnU-Net imagesTs volumes

Run a trained 2D model on volumes: every case is preprocessed exactly as in training (read from the run),
predicted slice by slice in batches and written as OUT_DIR/<case>.nii.gz (uint8) on the input's grid, with its
affine and header. BraTS runs: axial hemispheres, 1 = tumour. Organs runs: axial slices after RAS+
reorientation and the run's HU window, the training dataset's label values (docs/predict.md). Inputs are
checked before anything is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a folder made by weakseg train")
    p.add_argument("input", type=Path, help="BraTS folder (HGG/+LGG/ or subject folders) or an nnU-Net imagesTs "
                                            "folder ({case}_{XXXX}.nii.gz; which file is which channel: its "
                                            "dataset.json or --channels)")
    p.add_argument("out_dir", type=Path, help="output folder (must not exist unless --overwrite)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint")
    p.add_argument("--tta", action="store_true", help="flip test-time augmentation (mean probability of 4 flips)")
    p.add_argument("--save-probabilities", "--probabilities", dest="probabilities", action="store_true",
                   help="also write OUT_DIR/probabilities/<case>.nii.gz (float32; organs runs: 4D (I, J, K, C), "
                        "channels named in predict_report.json)")
    p.add_argument("--channels", default=None,
                   help="nnU-Net input: what the files _0000, _0001, ... hold, comma-separated (e.g. "
                        "t1,t1ce,t2,flair); default: the channel_names of the folder's dataset.json (or its "
                        "parent's); the files are read in the run's order")
    p.add_argument("--references", action="store_true",
                   help="BraTS input: also write OUT_DIR/references/<case>.nii.gz (the target region of each seg "
                        "file, 0/1) for weakseg score")
    p.add_argument("--batch-size", type=int, default=None,
                   help="slices per forward pass (default eval.batch_size; organs runs: at most 4 slices of "
                        "512 x 512, i.e. 2^20 pixels, the fastest and leanest on CPU)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--converted", type=Path, default=None,
                   help="the converted dataset holding the preprocessing options (default: the run's data.brats.root)")
    p.add_argument("--keep-outside-brain", action="store_true",
                   help="keep predictions on voxels where every modality is 0 (default: background)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR when it exists")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from weakseg.inference.predict import predict_folder

    report = predict_folder(args.run_dir, args.input, args.out_dir, checkpoint=args.checkpoint, tta=args.tta,
                            probabilities=args.probabilities, references=args.references,
                            batch_size=args.batch_size, device=args.device, converted=args.converted,
                            restrict_to_brain=not args.keep_outside_brain, overwrite=args.overwrite,
                            progress=False if args.no_progress else None,
                            channels=args.channels.split(",") if args.channels else None)
    print(f"wrote {len(report['cases'])} prediction(s) to {args.out_dir} in {report['seconds']:.1f} s")
    if report.get("input_kind") == "nnunet" and "hu_window" in report:      # an organs run
        print(f"score them with: weakseg score {args.out_dir} LABELS_DIR (e.g. the dataset's labelsTs)")
    if args.references:
        print(f"score them with: weakseg score {args.out_dir} {args.out_dir / 'references'} --labels "
              f"'{{\"tumour\": 1}}'")
    return 0
