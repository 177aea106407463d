"""write PNG panels of predictions (and translations) of a run

Write RUN_DIR/pictures/<split>_P.png and <split>_A.png: P images with their P->A translation, residual and
predicted mask vs ground truth (green = hit, red = false positive, blue = missed; the legend is in the
picture), and A images with their A->P translation and prediction. Translation panels appear for translation
methods.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="a folder made by weakseg train")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"], help="split the images come from")
    p.add_argument("--n", type=int, default=8, help="images (rows) per picture: P images in one, A images in the other")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"],
                   help="checkpoints/best.pt (best validation score) or last.pt")
    p.add_argument("--seed", type=int, default=0, help="which images are picked")


def run(args: argparse.Namespace) -> int:
    from weakseg.inference.show import show_run

    paths = show_run(args.run_dir, split=args.split, n=args.n, which=args.checkpoint, seed=args.seed)
    for path in paths:
        print(f"wrote {path}")
    return 0
