"""Volume-level scoring of a converted BraTS split: what ``weakseg predict`` + ``weakseg score`` would say.

The slice-level metrics (``evaluate_image_set``) score P and A hemisphere slices only: slices with a little
tumour or a little brain ("other", most of a volume's rows) and whole healthy volumes are never seen, so
validation can report 0.9 while a volume scores 0.5. Here every stored row of each patient
(valid and test keep every axial hemisphere slice) goes through ``predict_slices``, the model driver of
``weakseg predict``, with the same threshold and the same brain restriction (a voxel where every channel
is 0 is background), and is scored against the stored ground truth.

Scoring happens in hemisphere-slice space: the two hemispheres of a slice tile the canonical grid, so the
confusion counts equal those of the stitched volume (``weakseg.data.brats.preprocess.volume_from_slices``)
whenever the cut covers the grid (``midline: grid``, the default; with ``midline: brain`` columns outside the
cut are not scored). The brain mask is read from the stored normalised images: a brain voxel equal to its modality's
mean in every channel would count as background (normalisation maps it to exactly 0).

Reported (``weakseg.metrics.dice`` applies the empty-case policy):

- ``dice_pooled``: 2 sum(TP) / (2 sum(TP) + sum(FP) + sum(FN)) over every scored volume, healthy ones
  included, so false-positive voxels on healthy brains lower it: **the BraTS selection metric**
  (``train.select_metric: volume/dice_pooled`` in the brats preset);
- ``dice_per_volume``: hard Dice per tumour volume: mean, std, median, n;
- ``dice_mean_with_healthy``: mean Dice over tumour volumes and healthy volumes with a false alarm (Dice 0);
  a healthy volume predicted empty is left out (policy ``dice_both_empty: exclude``);
- ``healthy_fp_voxels`` (sum over healthy volumes), ``healthy_fp_voxels_mean``, ``n_healthy_false_alarm``;
- ``fp_voxels``: false-positive voxels over every volume; ``n_volumes``, ``n_tumour``, ``n_healthy``;
- ``seconds``: wall time of this scoring (its cost); ``per_case`` (a list: kept in reports, not logged).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from weakseg.config.schema import Config
from weakseg.data.registry import SegmentFn
from weakseg.evaluation.slices import predict_slices
from weakseg.metrics.dice import dice_from_counts


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"mean": None, "std": None, "median": None, "n": 0}
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "median": float(np.median(arr)), "n": len(values)}


def evaluate_brats_volumes(segment: SegmentFn, data: Any, cfg: Config, device: torch.device, *,
                           max_patients: int | None = None) -> dict[str, Any]:
    """Score every patient of ``data``'s split (a ``BratsSliceSet``) as a whole volume.

    ``max_patients``: score only the first n patients of the split (0 = all); None takes
    ``data.brats.volume_patients``, the cheap subset used during training. ``weakseg evaluate`` scores all.
    """
    from weakseg.data.brats.dataset import BratsSliceSet   # noqa: PLC0415

    if data.split == "train":            # convert keeps only the P and A rows of training patients
        return {"note": "not scored: the converted train split stores P and A slices only, not whole volumes"}
    t0 = time.perf_counter()
    full = data if getattr(data, "include", None) == "all" else BratsSliceSet(data.root, data.split, include="all")
    k, threshold = cfg.data.class_index, cfg.eval.threshold
    if max_patients is None:
        max_patients = cfg.data.brats.volume_patients
    n = len(full.patients) if max_patients <= 0 else min(max_patients, len(full.patients))
    counts, cases = [], []
    for pi in range(n):
        rows = np.nonzero(full.patient == pi)[0]
        images = full.images_at(rows)                                    # (R, C, H, W) float32
        probs = predict_slices(segment, images, batch_size=cfg.eval.batch_size, device=device, class_index=k)
        pred = (probs > threshold) & (images != 0).any(1)                # (R, H, W): brain voxels only
        ref = full.ground_truth_at(rows)[:, 0] > 0                       # (R, H, W)
        tp, fp, fn = int((pred & ref).sum()), int((pred & ~ref).sum()), int((~pred & ref).sum())
        counts.append((tp, fp, fn))
        cases.append({"case_id": full.patients[pi], "tp": tp, "fp": fp, "fn": fn, "ref_voxels": tp + fn,
                      "pred_voxels": tp + fp})
    c = torch.tensor(counts, dtype=torch.int64).reshape(-1, 3)            # (V, 3)
    dice = dice_from_counts(c[:, 0:1], c[:, 1:2], c[:, 2:3], both_empty="exclude")[:, 0]   # (V,)
    for case, d in zip(cases, dice.tolist()):
        case["dice"] = None if np.isnan(d) else d
    tumour = [cs for cs in cases if cs["ref_voxels"] > 0]
    healthy = [cs for cs in cases if cs["ref_voxels"] == 0]
    tp, fp, fn = (int(v) for v in c.sum(0).tolist()) if cases else (0, 0, 0)
    pooled = dice_from_counts(torch.tensor([[tp]]), torch.tensor([[fp]]), torch.tensor([[fn]]), both_empty="one")
    return {
        "dice_pooled": float(pooled) if cases else None,
        "dice_per_volume": _stats([cs["dice"] for cs in tumour]),
        "dice_mean_with_healthy": _stats([cs["dice"] for cs in cases if cs["dice"] is not None])["mean"],
        "healthy_fp_voxels": sum(cs["fp"] for cs in healthy),
        "healthy_fp_voxels_mean": (sum(cs["fp"] for cs in healthy) / len(healthy)) if healthy else None,
        "n_healthy_false_alarm": sum(1 for cs in healthy if cs["fp"] > 0),
        "fp_voxels": fp,
        "n_volumes": len(cases), "n_tumour": len(tumour), "n_healthy": len(healthy),
        "of_patients": len(full.patients),
        "threshold": threshold,
        "seconds": round(time.perf_counter() - t0, 3),
        "per_case": cases,
    }
