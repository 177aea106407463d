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
    paths = show_run(args.run_dir, split=args.split, n=args.n, which=args.checkpoint, seed=args.seed)
    for path in paths:
        print(f"wrote {path}")
    return 0


def show_run(run_dir: Path, *, split: str = "test", n: int = 8, which: str = "best", seed: int = 0) -> list[Path]:
    import torch

    from weakseg.data.samplers import pool_indices
    from weakseg.errors import WeaksegError
    from weakseg.inference.load import load_run
    from weakseg.inference.panels import MASK_LEGEND, method_panels, render_panels

    if n < 1:
        raise WeaksegError(f"--n must be >= 1, got {n}")
    run = load_run(run_dir, which=which)
    data = run.data.split(split)
    k = run.cfg.data.class_index
    g = torch.Generator().manual_seed(seed)
    picks = {}
    for pool in ("labelled", "a"):
        idx = pool_indices(data, pool, class_index=k)
        if len(idx) == 0:
            raise WeaksegError(f"split {split} has no {'labelled P' if pool == 'labelled' else 'A'} images to show")
        picks[pool] = idx[torch.randperm(len(idx), generator=g)[:n]]
    bp = data.batch(picks["labelled"]).to(run.device)
    ba = data.batch(picks["a"][: len(picks["labelled"])]).to(run.device)
    torch.manual_seed(seed)   # A->P translations sample a code
    p_cols, a_cols = method_panels(run.method.segment, run.method.panels, bp.image, bp.mask[:, k:k + 1], ba.image,
                                   threshold=run.cfg.eval.threshold, value_range=run.data.value_range_display)
    out = Path(run_dir) / "pictures"
    title = f"{run.cfg.method} on {run.cfg.data.preset or run.cfg.data.name} ({split}, {which} @ step {run.checkpoint['step']})"
    return [render_panels(p_cols, out / f"{split}_P.png", title=title + ": P images (with the object)",
                          legend=MASK_LEGEND),
            render_panels(a_cols, out / f"{split}_A.png", title=title + ": A images (healthy, no object)",
                          legend=MASK_LEGEND)]
