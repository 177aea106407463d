"""Pictures of what a trained run does: P images with their translation and mask, A images (``weakseg show``)."""

from __future__ import annotations

from pathlib import Path

import torch

from weakseg.data.samplers import pool_indices
from weakseg.errors import WeaksegError
from weakseg.inference.load import load_run
from weakseg.inference.panels import MASK_LEGEND, method_panels, render_panels


def show_run(run_dir: Path, *, split: str = "test", n: int = 8, which: str = "best", seed: int = 0) -> list[Path]:
    """Draw ``n`` labelled P and ``n`` A images of ``split`` (picked with ``seed``) through the run's ``which``
    checkpoint into ``run_dir/pictures/<split>_P.png`` and ``<split>_A.png``; returns the two paths."""
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
    title = (f"{run.cfg.method} on {run.cfg.data.preset or run.cfg.data.name} ({split}, {which} @ step "
             f"{run.checkpoint['step']})")
    return [render_panels(p_cols, out / f"{split}_P.png", title=title + ": P images (with the object)",
                          legend=MASK_LEGEND),
            render_panels(a_cols, out / f"{split}_A.png", title=title + ": A images (healthy, no object)",
                          legend=MASK_LEGEND)]
