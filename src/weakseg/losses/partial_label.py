"""Losses for training with missing annotations: SMILE and its baselines (Petit et al., DLMIA 2018).

SMILE (smile.md §5) puts one sigmoid per organ and weights every (class, pixel) binary cross-entropy by
``W`` from ``weakseg.data.status.status_targets``: pixels whose label is unknown for a class get weight 0
and contribute exactly nothing, neither to the loss nor to its gradient. The baselines (§7) are softmax
models trained with cross-entropy on integer maps built here as pure functions, and the marginal and
exclusion losses of Shi et al. (MedIA 2021; §13). Decoding K sigmoid probabilities into a label map (§6)
is ``weakseg.evaluation.decode``.

All functions compute in float32 outside autocast, so they are safe under bf16/fp16 training.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from weakseg.config.choices import ExclusionMode, Normalisation
from weakseg.data.status import ABSENT, MASK, is_missing
from weakseg.errors import WeaksegError

NORMALISATIONS: tuple[str, ...] = get_args(Normalisation)


def _no_autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, enabled=False)


def _check_same_shape(name: str, logits: Tensor, target: Tensor, weight: Tensor) -> None:
    if not logits.shape == target.shape == weight.shape:
        raise ValueError(f"{name}: logits, target and weight must have one shape (B, K, *S), got "
                         f"{tuple(logits.shape)}, {tuple(target.shape)}, {tuple(weight.shape)}")
    if logits.ndim < 3:
        raise ValueError(f"{name}: expected (B, K, *S) tensors, got {tuple(logits.shape)}")


def weighted_bce(
    logits: Tensor,
    target: Tensor,
    weight: Tensor,
    *,
    normalisation: Normalisation = "known_mean",
    pos_weight: Tensor | Sequence[float] | None = None,
) -> Tensor:
    """Per-class, per-pixel binary cross-entropy weighted by ``weight`` (smile.md §5.1-5.2).

    L = (1/Z) Σ_b Σ_k Σ_x w·BCE(z, y). Normalisations Z:
    ``known_mean`` Σ W clamped to >= 1 (default: mean over known labels; no known label gives 0);
    ``all_mean`` the element count B·K·N (PyTorch ``reduction="mean"`` with ``weight=``);
    ``class_mean`` per class the mean over its known pixels, then the mean over classes with Σ W_k > 0;
    ``sum`` Z = 1.

    Pixels with W = 0 do not influence the loss or any gradient, even when their logits or targets are
    inf or NaN: they are replaced before the BCE (``torch.where``), so their gradient is exactly 0.

    Args:
        pos_weight: per-class factor on the positive term, (K,) (PyTorch's ``pos_weight``).

    Shape:
        logits, target, weight: (B, K, *S); weight >= 0 (binary or soft). Returns a scalar float32.
    """
    _check_same_shape("weighted_bce", logits, target, weight)
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"weighted_bce: normalisation must be one of {', '.join(NORMALISATIONS)}, "
                         f"got {normalisation!r}")
    k = logits.shape[1]
    with _no_autocast(logits.device):
        z = logits.float()
        w = weight.to(device=z.device, dtype=torch.float32)
        known = w > 0
        z = torch.where(known, z, torch.zeros((), device=z.device))          # W = 0: no value, no gradient
        y = torch.where(known, target.to(z.device, torch.float32), torch.zeros((), device=z.device))
        pw = None
        if pos_weight is not None:
            pw = torch.as_tensor(pos_weight, dtype=torch.float32, device=z.device)
            if pw.shape != (k,):
                raise ValueError(f"weighted_bce: pos_weight must have shape ({k},), got {tuple(pw.shape)}")
            pw = pw.view(k, *[1] * (z.ndim - 2))                             # (K, 1...) broadcasts over (B, K, *S)
        loss = F.binary_cross_entropy_with_logits(z, y, weight=w, pos_weight=pw, reduction="none")
        if normalisation == "sum":
            return loss.sum()
        if normalisation == "all_mean":
            return loss.sum() / loss.numel()
        if normalisation == "known_mean":
            return loss.sum() / w.sum().clamp_min(1.0)
        per_class = loss.transpose(0, 1).reshape(k, -1).sum(1)               # (K,)
        w_class = w.transpose(0, 1).reshape(k, -1).sum(1)                    # (K,)
        used = w_class > 0
        means = per_class / w_class.clamp_min(torch.finfo(torch.float32).tiny)
        n_used = used.sum().clamp_min(1)
        return torch.where(used, means, torch.zeros((), device=z.device)).sum() / n_used


def masked_dice_loss(
    logits: Tensor,
    target: Tensor,
    weight: Tensor,
    *,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
    batch: bool = True,
) -> Tensor:
    """Soft Dice loss with a separate mask per channel (smile.md §5.3).

    D = (2 Σ w·p·y + s_nr) / (Σ w·p + Σ w·y + s_dr), p = sigmoid(logits), loss = mean over channels of
    1 − D, channels with Σ W = 0 skipped (0 when every channel is skipped). With W = 1 everywhere it equals
    MONAI ``DiceLoss(sigmoid=True, batch=batch)``; MONAI's masked Dice takes one mask for all channels.

    Args:
        batch: pool each class over the batch (a channel is a class), else one channel per (case, class).

    Shape:
        logits, target, weight: (B, K, *S). Returns a scalar float32.
    """
    _check_same_shape("masked_dice_loss", logits, target, weight)
    with _no_autocast(logits.device):
        w = weight.to(logits.device, torch.float32)
        known = w > 0
        p = torch.where(known, logits.float(), torch.zeros((), device=w.device)).sigmoid()
        y = torch.where(known, target.to(w.device, torch.float32), torch.zeros((), device=w.device))
        return _weighted_dice_loss(p, y, w, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch)


def _weighted_dice_loss(p: Tensor, y: Tensor, w: Tensor, *, smooth_nr: float, smooth_dr: float,
                        batch: bool) -> Tensor:
    """Mean over channels of 1 - Dice with per-voxel weights; channels with no weight are skipped.
    Shape: p, y, w (B, K, *S) float32. Returns a scalar."""
    dims = [0, *range(2, p.ndim)] if batch else list(range(2, p.ndim))
    inter = (w * p * y).sum(dims)                                             # (K,) or (B, K)
    denom = (w * p).sum(dims) + (w * y).sum(dims)
    dice = (2 * inter + smooth_nr) / (denom + smooth_dr)
    used = w.sum(dims) > 0
    return torch.where(used, 1 - dice, torch.zeros((), device=w.device)).sum() / used.sum().clamp_min(1)


def softmax_dice_loss(logits: Tensor, target: Tensor, *, ignore_index: int = -100, smooth_nr: float = 1e-5,
                      smooth_dr: float = 1e-5) -> Tensor:
    """Batch soft Dice of the foreground classes of a (K+1)-way softmax, ignored voxels left out.

    The Dice half of nnU-Net's CE + Dice for the softmax baselines (naive, oracle, spatial-ignore,
    drop-incomplete), so that they get the same overlap term as SMILE's masked Dice. With nothing ignored it
    equals MONAI ``DiceLoss(softmax=True, to_onehot_y=True, include_background=False, batch=True)``.

    Shape:
        logits: (B, K+1, *S); target: (B, *S) int64 (``ignore_index`` allowed). Returns a scalar float32.
    """
    with _no_autocast(logits.device):
        keep = target != ignore_index                                          # (B, *S)
        p = logits.float().softmax(1)[:, 1:]                                    # (B, K, *S)
        ids = torch.arange(1, logits.shape[1], device=logits.device).view(1, -1, *[1] * (target.ndim - 1))
        y = (target.unsqueeze(1) == ids).float()                               # ignored voxels: no class
        w = keep.unsqueeze(1).float().expand_as(p)
        return _weighted_dice_loss(p, y, w, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=True)


class WeightedBCELoss(nn.Module):
    """Module form of ``weighted_bce``: holds the normalisation and per-class ``pos_weight``."""

    def __init__(self, *, normalisation: Normalisation = "known_mean",
                 pos_weight: Tensor | Sequence[float] | None = None) -> None:
        super().__init__()
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {', '.join(NORMALISATIONS)}, got {normalisation!r}")
        self.normalisation = normalisation
        self.register_buffer("pos_weight", None if pos_weight is None else torch.as_tensor(pos_weight).float())

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
        return weighted_bce(logits, target, weight, normalisation=self.normalisation, pos_weight=self.pos_weight)


class MaskedDiceLoss(nn.Module):
    """Module form of ``masked_dice_loss``."""

    def __init__(self, *, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, batch: bool = True) -> None:
        super().__init__()
        self.smooth_nr, self.smooth_dr, self.batch = smooth_nr, smooth_dr, batch

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
        return masked_dice_loss(logits, target, weight, smooth_nr=self.smooth_nr, smooth_dr=self.smooth_dr,
                                batch=self.batch)


class SmileLoss(nn.Module):
    """SMILE's loss: weighted BCE plus an optional masked soft Dice (``dice_weight`` > 0).

    ``forward`` returns the weighted terms by name (``{"bce": ..., "dice": ...}``, ``dice`` only when
    ``dice_weight`` > 0); the training step sums them.
    """

    def __init__(self, *, normalisation: Normalisation = "known_mean",
                 pos_weight: Tensor | Sequence[float] | None = None, dice_weight: float = 0.0,
                 dice_batch: bool = True) -> None:
        super().__init__()
        if not (dice_weight >= 0 and math.isfinite(dice_weight)):
            raise ValueError(f"loss.dice_weight must be a finite number >= 0, got {dice_weight}")
        self.bce = WeightedBCELoss(normalisation=normalisation, pos_weight=pos_weight)
        self.dice = MaskedDiceLoss(batch=dice_batch)
        self.dice_weight = float(dice_weight)

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor) -> dict[str, Tensor]:
        terms = {"bce": self.bce(logits, target, weight)}
        if self.dice_weight > 0:
            terms["dice"] = self.dice_weight * self.dice(logits, target, weight)
        return terms


# --------------------------------------------------------------------------------------------------
# Softmax baselines (smile.md §7): naive, oracle, spatial_ignore, drop_incomplete
# --------------------------------------------------------------------------------------------------


def ce_targets(mask: Tensor, status: Tensor | None = None) -> Tensor:
    """Integer map for a (K+1)-way softmax: value k on voxels of class k, 0 elsewhere.

    With ``status``, only ``mask`` classes are written: unannotated organs become background (the
    ``naive`` baseline). Without it the mask is taken as full ground truth (``oracle``). Overlapping masks
    take the highest class index.

    Shape:
        mask: (B, K, *S) binary; status: (B, K) codes or None. Returns (B, *S) int64.
    """
    keep = mask != 0
    if status is not None:
        if tuple(status.shape) != tuple(mask.shape[:2]):
            raise ValueError(f"ce_targets: status {tuple(status.shape)} != mask {tuple(mask.shape[:2])}")
        keep = keep & (status.to(mask.device) == MASK).view(*status.shape, *[1] * (mask.ndim - 2))
    k = mask.shape[1]
    ids = torch.arange(1, k + 1, device=mask.device).view(1, k, *[1] * (mask.ndim - 2))
    return (keep.long() * ids).amax(1)                                        # (B, *S)


def is_complete(status: Tensor) -> Tensor:
    """Cases in which every class is annotated (``mask`` or ``absent``). Shape: (..., K) -> (...) bool."""
    return ((status == MASK) | (status == ABSENT)).all(-1)


def spatial_ignore_targets(mask: Tensor, status: Tensor, *, ignore_index: int = -100) -> Tensor:
    """The ``spatial_ignore`` baseline's map: one ignore mask shared by all classes (smile.md §7, §14).

    In a case with any missing class (``unknown``/``present``) every voxel not labelled by a ``mask`` class
    gets ``ignore_index``, for all classes at once (nnU-Net's ignore label, MONAI's masked losses).
    Complete cases keep their background.

    Shape:
        mask: (B, K, *S); status: (B, K). Returns (B, *S) int64.
    """
    label = ce_targets(mask, status)
    incomplete = ~is_complete(status.to(mask.device))                         # (B,)
    ignore = incomplete.view(-1, *[1] * (label.ndim - 1)) & (label == 0)
    return torch.where(ignore, torch.full_like(label, ignore_index), label)


@functools.lru_cache(maxsize=16)
def _weight_tensor(values: tuple[float, ...], device: torch.device) -> Tensor:
    """Per-class weights from the config, built once per device (not a host-to-device copy every step)."""
    return torch.tensor(values, dtype=torch.float32, device=device)


def cross_entropy(logits: Tensor, target: Tensor, *, ignore_index: int = -100,
                  class_weight: Tensor | Sequence[float] | None = None) -> Tensor:
    """Mean cross-entropy over non-ignored voxels, in float32; 0 (not NaN) when every voxel is ignored.

    With ``class_weight`` (K+1 values, background first) each voxel's term is weighted by its target
    class and the sum is divided by the sum of those weights (PyTorch's ``reduction="mean"`` with
    ``weight=``): the softmax baselines' imbalance lever, as ``pos_weight`` is SMILE's.

    Shape:
        logits: (B, K+1, *S); target: (B, *S) int64 (``ignore_index`` allowed). Returns a scalar.
    """
    with _no_autocast(logits.device):
        w = None
        if class_weight is not None:
            w = (_weight_tensor(tuple(class_weight), logits.device) if not isinstance(class_weight, Tensor)
                 else class_weight.to(logits.device, torch.float32))
            if tuple(w.shape) != (logits.shape[1],):
                raise ValueError(f"cross_entropy: class_weight must have shape ({logits.shape[1]},) for "
                                 f"{logits.shape[1]} output channels, got {tuple(w.shape)}")
        loss = F.cross_entropy(logits.float(), target, weight=w, ignore_index=ignore_index, reduction="sum")
        keep = target != ignore_index
        if w is None:
            return loss / keep.sum().clamp_min(1)
        return loss / w[target.clamp_min(0)].masked_fill(~keep, 0).sum().clamp_min(1e-12)


# --------------------------------------------------------------------------------------------------
# Marginal and exclusion losses (Shi et al., MedIA 2021; smile.md §13)
# --------------------------------------------------------------------------------------------------
#
# Shi, Xiao, Zhou, Zhou. *Marginal loss and exclusion loss for partially supervised multi-organ
# segmentation*. Medical Image Analysis 70 (2021), arXiv:2007.03868. Softmax K+1. In an image where some
# organs are not annotated, a voxel labelled 0 may be background or any of them, so the softmax mass of
# background and of every unannotated organ is summed into one "merged background" before the
# cross-entropy and the Dice (the marginal loss). The exclusion loss uses that organs do not overlap: on
# voxels known to be another annotated organ, organ k's probability should be 0.
#
# Statuses read as SMILE reads them (smile.md §13): annotated = ``mask``/``absent`` (an ``absent`` organ is
# a class of its own whose voxels simply do not occur), merged = ``unknown``/``present``.
#
# Our choices, where the paper and its public re-implementation (HiLab-git/PLS4MIS,
# ``code/models/MELoss/loss.py``) differ or leave room:
# - the probabilities are merged (``logsumexp`` of log-softmax), as in the paper; the re-implementation
#   adds logits, which is not a marginal;
# - the Dice half is the same foreground batch Dice as the other softmax baselines (``softmax_dice_loss``),
#   each organ scored only in the images where it is annotated; the merged background has no Dice term;
# - exclusion region E_k: voxels labelled as another annotated organ (smile.md §13's definition).
#   The re-implementation also counts the background of images where k is annotated, where the
#   cross-entropy already pushes p_k down, and a background channel;
# - exclusion term: a Dice overlap between p_k and E_k (``"dice"``, the paper's exclusive Dice and the
#   re-implementation's term, with no numerator smoothing so that perfect exclusion costs exactly 0), or
#   ``"log"``: the mean over E of -log(1 - p_k) (an exclusive cross-entropy with exactly zero gradient
#   outside E);
# - weights: loss = CE + dice_weight·Dice + exclusion_weight·exclusion. The re-implementation uses
#   0.5·CE + 0.5·Dice + 0.1·exclusion Dice, i.e. the exclusion at 0.2 of the CE weight; our default
#   ``exclusion_weight`` 0.2 keeps that ratio with dice_weight 1. The paper's own weighting is not
#   reproduced here (not checked against the text).

EXCLUSION_MODES: tuple[str, ...] = get_args(ExclusionMode)


def merged_background(status: Tensor) -> Tensor:
    """Channels summed into the merged background: channel 0 and every missing organ (``unknown``/``present``).

    Shape:
        status: (B, K) codes. Returns (B, K+1) bool.
    """
    return torch.cat([torch.ones_like(status[:, :1], dtype=torch.bool), is_missing(status)], 1)


def marginal_cross_entropy(logits: Tensor, target: Tensor, status: Tensor, *,
                           class_weight: Tensor | Sequence[float] | None = None) -> Tensor:
    """Marginal cross-entropy: -log q(target), q the softmax with background and missing organs merged.

    q_0 = p_0 + Σ_{k missing} p_k (computed as a ``logsumexp`` of log-softmax), q_k = p_k for annotated k.
    ``target`` holds k only on voxels of ``mask`` classes (``ce_targets(mask, status)``), 0 elsewhere. With
    every class annotated it equals ``cross_entropy``. Voxels whose merged background is every channel (an
    image with no annotated class) contribute exactly 0 and get exactly zero gradient; they still count in
    the mean, as in a plain CE over the batch. ``class_weight`` (K+1 values, background first) weights each
    voxel by its target and divides by the sum of those weights, as ``cross_entropy`` does.

    Shape:
        logits: (B, K+1, *S); target: (B, *S) int64 in 0..K; status: (B, K) codes. Returns a scalar float32.
    """
    if logits.ndim < 3 or tuple(status.shape) != (logits.shape[0], logits.shape[1] - 1):
        raise ValueError(f"marginal_cross_entropy: logits {tuple(logits.shape)} must be (B, K+1, *S) and status "
                         f"{tuple(status.shape)} (B, K)")
    with _no_autocast(logits.device):
        logp = logits.float().log_softmax(1)                                     # (B, K+1, *S)
        view = (*status.shape[:1], logits.shape[1], *[1] * (logits.ndim - 2))
        merged = merged_background(status.to(logits.device)).view(view)         # (B, K+1, 1...)
        log_bg = logp.masked_fill(~merged, float("-inf")).logsumexp(1)          # (B, *S): log q_0
        picked = logp.gather(1, target.unsqueeze(1)).squeeze(1)                  # (B, *S): log p_target
        nll = -torch.where(target == 0, log_bg, picked)
        trivial = merged.all(1) & (target == 0)                                 # q_0 = 1: no signal at all
        nll = torch.where(trivial, torch.zeros((), device=nll.device), nll)
        if class_weight is None:
            return nll.sum() / max(nll.numel(), 1)
        w = (_weight_tensor(tuple(class_weight), logits.device) if not isinstance(class_weight, Tensor)
             else class_weight.to(logits.device, torch.float32))
        if tuple(w.shape) != (logits.shape[1],):
            raise ValueError(f"marginal_cross_entropy: class_weight must have shape ({logits.shape[1]},), got "
                             f"{tuple(w.shape)}")
        wv = w[target]                                                           # (B, *S)
        return (wv * nll).sum() / wv.sum().clamp_min(1e-12)


def marginal_dice_loss(logits: Tensor, target: Tensor, status: Tensor, *, smooth_nr: float = 1e-5,
                       smooth_dr: float = 1e-5) -> Tensor:
    """Batch soft Dice of the annotated organs of a (K+1)-way softmax (the Dice half of the marginal loss).

    Organ k is scored only over the images where it is annotated (``mask``/``absent``); where it is missing
    its probability belongs to the merged background, which has no Dice term (as ``softmax_dice_loss`` has
    none for the background). With every class annotated it equals ``softmax_dice_loss``.

    Shape:
        logits: (B, K+1, *S); target: (B, *S) int64; status: (B, K) codes. Returns a scalar float32.
    """
    with _no_autocast(logits.device):
        p = logits.float().softmax(1)[:, 1:]                                     # (B, K, *S)
        ids = torch.arange(1, logits.shape[1], device=logits.device).view(1, -1, *[1] * (target.ndim - 1))
        y = (target.unsqueeze(1) == ids).float()                                 # (B, K, *S)
        annotated = ~is_missing(status.to(logits.device))                   # (B, K)
        w = annotated.view(*annotated.shape, *[1] * (target.ndim - 1)).float().expand_as(p)
        return _weighted_dice_loss(p, y, w, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=True)


def exclusion_loss(logits: Tensor, target: Tensor, *, mode: ExclusionMode = "dice",
                   smooth_dr: float = 1e-5) -> Tensor:
    """Penalty on organ k's softmax probability over E_k, the voxels labelled as another annotated organ.

    ``target`` is the marginal loss's map (``ce_targets(mask, status)``): it names only annotated organs,
    so E_k = {x : target(x) > 0 and target(x) != k} needs no statuses. Modes:
    ``"dice"``: mean over organs with |E_k| > 0 of 2 Σ_E p_k / (|E_k| + Σ p_k + s) (batch-pooled; the
    denominator's Σ p_k runs over every voxel, so the gradient reaches voxels outside E through it);
    ``"log"``: the mean over all (k, x in E_k) of -log(1 - p_k(x)), with exactly zero gradient outside E.
    No organ with a non-empty E_k in the batch gives 0 (and zero gradients), never NaN.

    Shape:
        logits: (B, K+1, *S); target: (B, *S) int64. Returns a scalar float32.
    """
    if mode not in EXCLUSION_MODES:
        raise ValueError(f"exclusion mode must be one of {', '.join(EXCLUSION_MODES)}, got {mode!r}")
    with _no_autocast(logits.device):
        k = logits.shape[1] - 1
        ids = torch.arange(1, k + 1, device=logits.device).view(1, k, *[1] * (target.ndim - 1))
        excluded = (target.unsqueeze(1) > 0) & (target.unsqueeze(1) != ids)      # (B, K, *S): E_k
        e = excluded.float()
        dims = [0, *range(2, logits.ndim)]
        n_e = e.sum(dims)                                                        # (K,)
        used = n_e > 0
        if mode == "dice":
            p = logits.float().softmax(1)[:, 1:]                                 # (B, K, *S)
            overlap = 2 * (e * p).sum(dims) / (n_e + p.sum(dims) + smooth_dr)    # (K,)
            return torch.where(used, overlap, torch.zeros((), device=p.device)).sum() / used.sum().clamp_min(1)
        logp = logits.float().log_softmax(1)                                     # (B, K+1, *S)
        terms = []
        for c in range(k):                      # log(1 - p_k) = logsumexp of the other channels' log p: stable
            others = torch.cat([logp[:, :c + 1], logp[:, c + 2:]], 1).logsumexp(1)             # (B, *S)
            terms.append(torch.where(excluded[:, c], -others, torch.zeros((), device=logp.device)))
        return torch.stack(terms, 1).sum() / n_e.sum().clamp_min(1)


class MarginalLoss(nn.Module):
    """Marginal CE + ``dice_weight`` · marginal Dice + ``exclusion_weight`` · exclusion (Shi et al. 2021).

    ``forward(logits, target, status)`` returns the weighted terms by name (``ce``, and ``dice`` /
    ``exclusion`` when their weight is > 0); ``target`` is ``ce_targets(mask, status)``.
    """

    def __init__(self, *, class_weight: Sequence[float] | None = None, dice_weight: float = 0.0,
                 exclusion_weight: float = 0.2, exclusion: ExclusionMode = "dice") -> None:
        super().__init__()
        for name, value in (("dice_weight", dice_weight), ("exclusion_weight", exclusion_weight)):
            if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if exclusion not in EXCLUSION_MODES:
            raise ValueError(f"exclusion must be one of {', '.join(EXCLUSION_MODES)}, got {exclusion!r}")
        self.class_weight = None if class_weight is None else tuple(float(v) for v in class_weight)
        self.dice_weight, self.exclusion_weight, self.exclusion = float(dice_weight), float(exclusion_weight), exclusion

    def forward(self, logits: Tensor, target: Tensor, status: Tensor) -> dict[str, Tensor]:
        terms = {"ce": marginal_cross_entropy(logits, target, status, class_weight=self.class_weight)}
        if self.dice_weight > 0:
            terms["dice"] = self.dice_weight * marginal_dice_loss(logits, target, status)
        if self.exclusion_weight > 0:
            terms["exclusion"] = self.exclusion_weight * exclusion_loss(logits, target, mode=self.exclusion)
        return terms


def drop_incomplete(statuses: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The ``drop_incomplete`` baseline's training cases: those with every class ``mask`` or ``absent``.

    Raises ``WeaksegError`` when no case remains (it cannot train), naming the count.
    """
    kept = [case for case, st in statuses.items() if all(s in ("mask", "absent") for s in st.values())]
    if statuses and not kept:
        raise WeaksegError(f"drop_incomplete: none of the {len(statuses)} training cases has every class "
                           "annotated; this baseline cannot run at this missing rate")
    return kept
