"""Functional losses: plain functions of tensors (thin ``nn.Module`` wrappers live next to them)."""

from __future__ import annotations

from torch import Tensor


def _check(probs: Tensor, target: Tensor) -> None:
    if probs.shape != target.shape:
        raise ValueError(f"probs and target must have the same shape, got {tuple(probs.shape)} and "
                         f"{tuple(target.shape)}; select the labelled images of the batch first")


def soft_dice_loss_batch(probs: Tensor, target: Tensor, *, smooth: float = 1.0) -> Tensor:
    """GenSeg's batch soft Dice loss (R5 ``dice_loss``), shifted to [0, 1].

    ``1 - (2 * sum(y * p) + smooth) / (sum(y) + sum(p) + smooth)``, with the sums pooled over every pixel
    of every image passed: one value per batch, not per image (``genseg.md`` §5). The original returns
    the negated ratio (range [-1, 0]); ``1 +`` it has the same gradient. Computed in float32 whatever the
    input dtype (bf16 sums over large images lose too much precision). Pass only labelled images.

    Shape:
        probs: (B, K, *S) sigmoid probabilities; target: (B, K, *S) 0/1. Returns a scalar () float32.
    """
    _check(probs, target)
    p = probs.float()
    y = target.float()
    inter = (y * p).sum()
    return 1.0 - (2.0 * inter + smooth) / (y.sum() + p.sum() + smooth)
