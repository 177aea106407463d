"""From network outputs to label maps: calibrated sigmoids, K-sigmoid decoding, head detection (smile.md §6).

Evaluation, ``weakseg predict`` and SMILEr's pseudo-label scoring all decode through these functions, so a
volume scored by ``weakseg evaluate`` and the same volume written by ``weakseg predict`` get the same labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from weakseg.errors import WeaksegError
from weakseg.methods.partial import SIGMOID_METHODS

if TYPE_CHECKING:
    from weakseg.config.schema import Config

DecodeMode = Literal["argmax_threshold", "per_class", "softmax"]


def calibrated_sigmoid(logits: Tensor, *, pos_weight: Tensor | Sequence[float] | None = None) -> Tensor:
    """Per-class probabilities sigmoid(z_k - log w_k) that are comparable across classes.

    BCE with ``pos_weight`` w_k is minimised at z_k = logit(p_k) + log w_k for a true class probability p_k,
    so sigmoid(z_k) overstates p_k and by a different amount per class: with w = (3, 10, 30), a raw 0.5 is a
    true 1/4, 1/11 and 1/31. Subtracting log w_k undoes that before thresholds and argmaxes (smile.md §6,
    §8.2). Without ``pos_weight`` it is ``torch.sigmoid``. A Dice term in the loss also pulls the
    optimum; this corrects only the BCE's known shift.

    Shape:
        logits: (B, K, *S); pos_weight: (K,) positive. Returns (B, K, *S) float32.
    """
    z = logits.float()
    if pos_weight is None:
        return z.sigmoid()
    w = torch.as_tensor(pos_weight, dtype=torch.float32, device=z.device)
    if w.shape != (z.shape[1],) or not bool((w > 0).all()):
        raise ValueError(f"calibrated_sigmoid: pos_weight must be {z.shape[1]} positive values, got {w.tolist()}")
    return (z - w.log().view(1, -1, *[1] * (z.ndim - 2))).sigmoid()


def decode_label_map(probs: Tensor, *, threshold: float = 0.5, mode: DecodeMode = "argmax_threshold") -> Tensor:
    """Turn per-class probabilities into a prediction.

    ``argmax_threshold`` (K sigmoid channels): l(x) = 1 + argmax_k p_k(x) where max_k p_k(x) > threshold,
    else 0; ties go to the lower class. ``per_class``: K binary masks p_k > threshold, overlaps allowed.
    ``softmax`` (K+1 channels, channel 0 background): argmax over channels.

    Shape:
        probs: (B, K, *S) (K+1 channels for ``softmax``). Returns (B, *S) int64, or (B, K, *S) bool for
        ``per_class``.
    """
    if probs.ndim < 3:
        raise ValueError(f"decode_label_map: expected (B, K, *S), got {tuple(probs.shape)}")
    if mode == "per_class":
        return probs > threshold
    if mode == "softmax":
        return probs.argmax(1)
    if mode != "argmax_threshold":
        raise ValueError(f"decode.mode must be argmax_threshold, per_class or softmax, got {mode!r}")
    idx = probs.argmax(1)                                                     # (B, *S); first max on ties
    best = probs.gather(1, idx.unsqueeze(1)).squeeze(1)                       # (B, *S)
    return torch.where(best > threshold, idx + 1, torch.zeros_like(idx))


def head_kind(n_channels: int, n_classes: int) -> Literal["sigmoid", "softmax"]:
    """``softmax`` for K+1 output channels (channel 0 background), ``sigmoid`` for K; anything else is refused."""
    if n_channels == n_classes + 1:
        return "softmax"
    if n_channels == n_classes:
        return "sigmoid"
    raise WeaksegError(f"the model outputs {n_channels} channels for {n_classes} classes; expected {n_classes} "
                       f"(sigmoid) or {n_classes + 1} (softmax with background)")


def decode_logits(logits: Tensor, n_classes: int, *, threshold: float = 0.5,
                  pos_weight: Sequence[float] | None = None) -> Tensor:
    """Class ids of a batch: argmax of a softmax head's logits, ``decode_label_map`` of calibrated sigmoids.

    Shape:
        logits: (B, K or K+1, *S) -> (B, *S) int64 class ids 0..K.
    """
    if head_kind(logits.shape[1], n_classes) == "softmax":
        return logits.argmax(1)
    return decode_label_map(calibrated_sigmoid(logits, pos_weight=pos_weight), threshold=threshold)


def decode_pos_weight(cfg: Config) -> list[float] | None:
    """The per-class ``pos_weight`` to take out of sigmoid outputs before they are compared across classes
    (``smile.calibrate_pos_weight``), or None (raw sigmoids). Softmax methods ignore it."""
    if cfg.method not in SIGMOID_METHODS or not cfg.smile.calibrate_pos_weight:
        return None
    return None if cfg.smile.pos_weight is None else [float(v) for v in cfg.smile.pos_weight]
