"""Image-set evaluation for 2D presence/absence data (cluttered MNIST, BraTS hemisphere slices).

Labelled P images (class present, mask given) are scored for Dice; A images (class absent) feed the
false-positive metrics that the original GenSeg evaluation never measured (``genseg.md`` §12). The
accumulator streams batches: it keeps pooled sums and one float per labelled P image, never predictions.

Reported per class (``compute``):

- ``dice_per_image``: hard Dice at ``probs > threshold`` per labelled P image: mean, std (ddof=0), median,
  ``n`` (images in the mean) and ``n_ref_empty`` (P images whose mask was empty, scored by the policy);
- ``dice_hard_global``: 2TP/(2TP+FP+FN) with counts pooled over the split's labelled P images; 1 when
  the denominator is 0;
- ``dice_soft_global``: genseg's reference metric (2*sum(y*p) + 1) / (sum(y) + sum(p) + 1) on soft
  probabilities pooled over the same images;
- ``area_ratio_p``: predicted-positive pixels over mask pixels, pooled over the labelled P images (about 1
  for a good segmenter; far above 1 when the whole image is painted: a collapsed run);
- ``fp_image_rate`` (A images with >= 1 predicted pixel), ``fp_image_rate_<m>`` for every other m in
  ``fp_min_pixels``, ``fp_area`` (mean predicted-positive fraction of A images);
- ``n_p``, ``n_a``; the policy as a dict.

A mean over zero images is ``None``, never NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from weakseg.metrics.counts import confusion_counts
from weakseg.metrics.dice import dice_from_counts
from weakseg.metrics.policy import EmptyCasePolicy


def _per_class_flags(x: Tensor | None, batch: int, classes: int, name: str, default: bool) -> Tensor:
    if x is None:
        return torch.full((batch, classes), default, dtype=torch.bool)
    x = torch.as_tensor(x).detach().cpu().bool()
    if x.shape == (batch,):
        return x[:, None].expand(batch, classes)  # (B,) -> (B, K): one flag for every class
    if x.shape == (batch, classes):
        return x
    raise ValueError(f"{name} must have shape (B,) = ({batch},) or (B, K) = ({batch}, {classes}), got {tuple(x.shape)}")


class ImageSetMetrics:
    """Streaming accumulator of the image-level metrics over one split.

    ``update`` once per batch, ``compute`` at the end, ``reset`` to reuse.

    Args:
        threshold: a pixel is predicted positive when ``prob > threshold``.
        fp_min_pixels: false-positive image rates are reported for each minimum predicted area m (pixels);
            must contain 1 (reported as ``fp_image_rate``); others as ``fp_image_rate_<m>``.
        class_names: names for K > 1 (default "0", "1", ...); K = 1 returns a flat dict.
        policy: empty-case policy for a P image whose mask is empty (should not happen; counted).
    """

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        fp_min_pixels: Sequence[int] = (1, 10),
        class_names: Sequence[str] | None = None,
        policy: EmptyCasePolicy | None = None,
    ) -> None:
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        ms = [int(m) for m in fp_min_pixels]
        if 1 not in ms or any(m < 1 for m in ms) or len(set(ms)) != len(ms):
            raise ValueError(f"fp_min_pixels must be distinct integers >= 1 and contain 1, got {list(fp_min_pixels)}")
        self.threshold = float(threshold)
        self.fp_min_pixels = tuple(ms)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.policy = policy or EmptyCasePolicy()
        self.reset()

    def reset(self) -> None:
        """Forget every accumulated batch."""
        self._k: int | None = None
        self._dice: list[list[np.ndarray]] = []
        self._sums: dict[str, np.ndarray] = {}

    def _init(self, k: int) -> None:
        if self.class_names is not None and len(self.class_names) != k:
            raise ValueError(f"class_names has {len(self.class_names)} names but the batch has K={k} classes")
        self._k = k
        self._dice = [[] for _ in range(k)]
        names = ["tp", "fp", "fn", "n_p", "n_ref_empty", "n_a"] + [f"hits_{m}" for m in self.fp_min_pixels]
        self._sums = {n: np.zeros(k, dtype=np.int64) for n in names}
        for n in ("syp", "sy", "sp", "area"):
            self._sums[n] = np.zeros(k, dtype=np.float64)

    @torch.no_grad()
    def update(
        self,
        probs: Tensor,
        mask: Tensor,
        is_p: Tensor,
        has_mask: Tensor | None = None,
        *,
        is_a: Tensor | None = None,
    ) -> None:
        """Add one batch.

        Labelled P images (``is_p & has_mask``) are scored for Dice; A images (``is_a``, default
        ``~is_p``) feed the false-positive metrics; other images (P without a mask, unknown) are ignored.

        Shape:
            probs: (B, K, H, W) float in [0, 1] (sigmoid output); mask: (B, K, H, W) 0/1 (zeros where no
            mask); is_p, has_mask, is_a: (B,) or (B, K) bool.
        """
        if probs.shape != mask.shape or probs.ndim < 3:
            raise ValueError(
                f"probs and mask must both be (B, K, H, W), got {tuple(probs.shape)} and {tuple(mask.shape)}"
            )
        probs = probs.detach().float().cpu()
        if not ((probs >= 0) & (probs <= 1)).all():
            raise ValueError("probs must be probabilities in [0, 1] (pass torch.sigmoid(logits)), got values outside")
        b, k = probs.shape[:2]
        if self._k is None:
            self._init(k)
        elif k != self._k:
            raise ValueError(f"batch has K={k} classes but earlier batches had K={self._k}")
        p_flags = _per_class_flags(is_p, b, k, "is_p", True)
        scored = p_flags & _per_class_flags(has_mask, b, k, "has_mask", True)  # (B, K)
        absent = ~p_flags if is_a is None else _per_class_flags(is_a, b, k, "is_a", False)  # (B, K)

        ref = mask.detach().cpu()
        pred = probs > self.threshold  # (B, K, H, W)
        tp, fp, fn, _ = confusion_counts(pred, ref)  # each (B, K)
        dice = dice_from_counts(tp, fp, fn, both_empty=self.policy.dice_both_empty)  # (B, K)
        y = ref.float()
        syp = (y * probs).flatten(2).sum(-1, dtype=torch.float64)  # (B, K)
        sy = y.flatten(2).sum(-1, dtype=torch.float64)
        sp = probs.flatten(2).sum(-1, dtype=torch.float64)
        n_pos = pred.flatten(2).sum(-1)  # (B, K) predicted-positive pixels
        n_pix = pred.flatten(2).shape[-1]

        s = self._sums
        sc, ab = scored.numpy(), absent.numpy()
        for c in range(k):
            self._dice[c].append(dice[:, c].numpy()[sc[:, c]])
        s["tp"] += np.where(sc, tp.numpy(), 0).sum(0)
        s["fp"] += np.where(sc, fp.numpy(), 0).sum(0)
        s["fn"] += np.where(sc, fn.numpy(), 0).sum(0)
        s["n_p"] += sc.sum(0)
        s["n_ref_empty"] += (sc & (tp + fn == 0).numpy()).sum(0)
        s["syp"] += np.where(sc, syp.numpy(), 0.0).sum(0)
        s["sy"] += np.where(sc, sy.numpy(), 0.0).sum(0)
        s["sp"] += np.where(sc, sp.numpy(), 0.0).sum(0)
        s["n_a"] += ab.sum(0)
        for m in self.fp_min_pixels:
            s[f"hits_{m}"] += (ab & (n_pos >= m).numpy()).sum(0)
        s["area"] += np.where(ab, n_pos.numpy() / n_pix, 0.0).sum(0)

    def _class_dict(self, c: int) -> dict[str, Any]:
        s = self._sums
        vals = np.concatenate(self._dice[c]) if self._dice[c] else np.zeros(0)
        vals = vals[~np.isnan(vals)]  # "exclude": both-empty P images leave the mean (counted in n_ref_empty)
        n_p, n_a = int(s["n_p"][c]), int(s["n_a"][c])
        tp, fp, fn = (int(s[n][c]) for n in ("tp", "fp", "fn"))
        den = 2 * tp + fp + fn
        out: dict[str, Any] = {
            "dice_per_image": {
                "mean": float(vals.mean()) if vals.size else None,
                "std": float(vals.std()) if vals.size else None,
                "median": float(np.median(vals)) if vals.size else None,
                "n": int(vals.size),
                "n_ref_empty": int(s["n_ref_empty"][c]),
            },
            "dice_hard_global": None if n_p == 0 else (1.0 if den == 0 else 2 * tp / den),
            "dice_soft_global": None if n_p == 0 else float(
                (2 * s["syp"][c] + 1) / (s["sy"][c] + s["sp"][c] + 1)
            ),
        }
        out["area_ratio_p"] = None if tp + fn == 0 else (tp + fp) / (tp + fn)
        for m in self.fp_min_pixels:
            key = "fp_image_rate" if m == 1 else f"fp_image_rate_{m}"
            out[key] = None if n_a == 0 else int(s[f"hits_{m}"][c]) / n_a
        out["fp_area"] = None if n_a == 0 else float(s["area"][c] / n_a)
        out["n_p"] = n_p
        out["n_a"] = n_a
        return out

    def compute(self) -> dict[str, Any]:
        """The metrics dict: flat for K = 1, ``{"classes": {name: ...}, "policy": ...}`` for K > 1.

        Before any ``update`` it returns the K = 1 layout with every mean None and counts 0.
        """
        fresh = self._k is None
        if fresh:
            self._init(1 if self.class_names is None else len(self.class_names))
        try:
            k = int(self._k)  # type: ignore[arg-type]
            if k == 1:
                return {**self._class_dict(0), "policy": self.policy.to_dict()}
            names = self.class_names or [str(c) for c in range(k)]
            return {"classes": {n: self._class_dict(c) for c, n in enumerate(names)}, "policy": self.policy.to_dict()}
        finally:
            if fresh:
                self.reset()  # computing on nothing must not fix K for later batches
