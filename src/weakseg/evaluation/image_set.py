"""Scoring of 2D image sets (MNIST canvases, BraTS hemisphere slices): Dice on P images, false positives on A."""

from __future__ import annotations

from typing import Any

import torch

from weakseg.config.schema import Config
from weakseg.data.datasets import SampleSet
from weakseg.data.registry import SegmentFn
from weakseg.data.status import ABSENT, MASK
from weakseg.metrics.image_level import ImageSetMetrics


def evaluate_image_set(segment: SegmentFn, data: SampleSet, cfg: Config, device: torch.device) -> dict[str, Any]:
    """P images with masks are scored for Dice; A (``absent``) images feed the false-positive rates.

    Empty-case policy: see ``ImageSetMetrics`` (the README states it too).
    """
    k = cfg.data.class_index
    metrics = ImageSetMetrics(threshold=cfg.eval.threshold)
    bs = cfg.eval.batch_size
    for start in range(0, len(data), bs):
        index = torch.arange(start, min(start + bs, len(data)))
        batch = data.batch(index).to(device)
        logits = segment(batch.image)[:, k:k + 1].float()            # (B, 1, *S)
        status = batch.status[:, k]
        is_p = (status == MASK) & batch.has_mask                      # scored for Dice
        is_a = status == ABSENT                                       # healthy: false positives
        metrics.update(torch.sigmoid(logits).cpu(), batch.mask[:, k:k + 1].cpu(), is_p=is_p.cpu(), is_a=is_a.cpu())
    return metrics.compute()
