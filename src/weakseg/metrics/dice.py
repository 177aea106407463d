"""Dice and IoU from confusion counts, with the empty-case policy spelled out in the signature."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

_BOTH_EMPTY = ("exclude", "one")


def _check(both_empty: str) -> None:
    if both_empty not in _BOTH_EMPTY:
        raise ValueError(f"both_empty={both_empty!r} is not valid; use one of {', '.join(_BOTH_EMPTY)}")


def dice_from_counts(
    tp: Tensor,
    fp: Tensor,
    fn: Tensor,
    tn: Tensor | None = None,
    *,
    both_empty: Literal["exclude", "one"] = "exclude",
) -> Tensor:
    """Dice per case and class from confusion counts.

    An empty reference or prediction on its own scores 0. When both are empty the result is NaN
    ("exclude": left out of means and counted) or 1 ("one"). ``tn`` is accepted and ignored, so
    ``dice_from_counts(*confusion_counts(pred, ref))`` works.

    Shape:
        tp, fp, fn: (B, K). Returns (B, K), float64.
    """
    _check(both_empty)
    tp, fp, fn = (torch.as_tensor(t).to(torch.float64) for t in (tp, fp, fn))
    den = 2 * tp + fp + fn
    empty = den == 0
    fill = float("nan") if both_empty == "exclude" else 1.0
    return torch.where(empty, torch.full_like(den, fill), 2 * tp / torch.where(empty, torch.ones_like(den), den))


def iou_from_counts(
    tp: Tensor,
    fp: Tensor,
    fn: Tensor,
    tn: Tensor | None = None,
    *,
    both_empty: Literal["exclude", "one"] = "exclude",
) -> Tensor:
    """Intersection over union per case and class, same empty-case rules as ``dice_from_counts``.

    Shape:
        tp, fp, fn: (B, K). Returns (B, K), float64.
    """
    _check(both_empty)
    tp, fp, fn = (torch.as_tensor(t).to(torch.float64) for t in (tp, fp, fn))
    den = tp + fp + fn
    empty = den == 0
    fill = float("nan") if both_empty == "exclude" else 1.0
    return torch.where(empty, torch.full_like(den, fill), tp / torch.where(empty, torch.ones_like(den), den))
