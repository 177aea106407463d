"""Confusion counts per case and class, the one place TP/FP/FN/TN are computed.

Every overlap metric (Dice, IoU, pooled Dice) is derived from these counts, so the empty-case policy is
applied in exactly one place (``dice.py``) and no library's empty handling can move our numbers
(``ecosystem.md`` §7.1).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _as_bool(x: Tensor, name: str) -> Tensor:
    if x.dtype == torch.bool:
        return x
    if not ((x == 0) | (x == 1)).all():
        raise ValueError(
            f"{name} must be boolean or 0/1 valued; threshold probabilities first (e.g. probs > 0.5)"
        )
    return x != 0


def confusion_counts(pred: Tensor, ref: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """True/false positives and negatives per case and class.

    Shape:
        pred, ref: (B, K, *S), bool or 0/1 of any dtype. Returns tp, fp, fn, tn: each (B, K) int64.
    """
    if pred.shape != ref.shape:
        raise ValueError(f"pred and ref must have the same shape (B, K, *S), got {tuple(pred.shape)} and "
                         f"{tuple(ref.shape)}")
    if pred.ndim < 3:
        raise ValueError(f"expected (B, K, *S) with at least one spatial axis, got shape {tuple(pred.shape)}")
    p = _as_bool(pred, "pred").flatten(2)  # (B, K, N)
    r = _as_bool(ref, "ref").flatten(2)  # (B, K, N)
    n = p.shape[-1]
    tp = (p & r).sum(-1, dtype=torch.int64)
    fp = (p & ~r).sum(-1, dtype=torch.int64)
    fn = (~p & r).sum(-1, dtype=torch.int64)
    tn = n - tp - fp - fn
    return tp, fp, fn, tn


def confusion_counts_numpy(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, ...]:
    """numpy twin of ``confusion_counts``.

    Shape:
        pred, ref: (B, K, *S), bool or 0/1. Returns tp, fp, fn, tn: each (B, K) int64.
    """
    tp, fp, fn, tn = confusion_counts(torch.from_numpy(np.asarray(pred)), torch.from_numpy(np.asarray(ref)))
    return tp.numpy(), fp.numpy(), fn.numpy(), tn.numpy()
