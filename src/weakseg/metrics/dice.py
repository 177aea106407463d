"""Dice and IoU from confusion counts, with the empty-case policy spelled out in the signature."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

BothEmpty = Literal["exclude", "one"]
_BOTH_EMPTY: tuple[str, ...] = get_args(BothEmpty)


def _overlap(tp: Tensor, fp: Tensor, fn: Tensor, *, tp_weight: int, both_empty: BothEmpty) -> Tensor:
    """w·TP / (w·TP + FP + FN): Dice with w = 2, IoU with w = 1; ``both_empty`` fills 0/0 (NaN or 1)."""
    if both_empty not in _BOTH_EMPTY:
        raise ValueError(f"both_empty={both_empty!r} is not valid; use one of {', '.join(_BOTH_EMPTY)}")
    tp, fp, fn = (torch.as_tensor(t).to(torch.float64) for t in (tp, fp, fn))
    den = tp_weight * tp + fp + fn
    empty = den == 0
    fill = float("nan") if both_empty == "exclude" else 1.0
    ratio = tp_weight * tp / torch.where(empty, torch.ones_like(den), den)
    return torch.where(empty, torch.full_like(den, fill), ratio)


def dice_from_counts(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor | None = None, *,
                     both_empty: BothEmpty = "exclude") -> Tensor:
    """Dice per case and class from confusion counts.

    An empty reference or prediction on its own scores 0. When both are empty the result is NaN
    ("exclude": left out of means and counted) or 1 ("one"). ``tn`` is accepted and ignored, so
    ``dice_from_counts(*confusion_counts(pred, ref))`` works.

    Shape:
        tp, fp, fn: (B, K). Returns (B, K), float64.
    """
    return _overlap(tp, fp, fn, tp_weight=2, both_empty=both_empty)


def iou_from_counts(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor | None = None, *,
                    both_empty: BothEmpty = "exclude") -> Tensor:
    """Intersection over union per case and class, same empty-case rules as ``dice_from_counts``.

    Shape:
        tp, fp, fn: (B, K). Returns (B, K), float64.
    """
    return _overlap(tp, fp, fn, tp_weight=1, both_empty=both_empty)
