"""Translation health of a presence/absence translator (GenSeg, ``genseg.md`` §3): does P->A remove the object?

GenSeg segments well only once its P->A translation removes the object and leaves the rest of the image
alone, so the residual ``x_P - x_PA`` should sit on the object's pixels. An identity translation (the
failure mode of an untrained or collapsed generator) leaves every pixel as it was. ``TranslationHealth``
pools, over a split's P images with masks (every validation P image of cluttered MNIST):

- ``object_removed``: sum over object pixels of ``(x_P - x_PA)`` / sum over object pixels of ``x_P``, the
  share of the object's intensity taken out (0 for identity, about 1 when removed; below 1 where clutter
  under the object is kept);
- ``clutter_changed``: sum over clutter pixels of ``|x_P - x_PA|`` / sum over clutter pixels of ``|x_P|``
  (clutter = pixels off the mask with ``x_P > clutter_threshold``; 0 when the clutter is kept);
- ``residual_on_object``: share of the total absolute residual that falls on object pixels, beside
  ``object_area`` (the share of pixels on the object: the value a residual spread evenly would give);
- ``residual_object_mean``, ``residual_clutter_mean``: mean absolute residual per object / clutter pixel.

Discriminator accuracies (``disc_accuracy``): the share of real images a hinge discriminator scores above 0
and of translated ones it scores below 0 (patch scores averaged per image). About 0.5 each: the
discriminator cannot tell; 1 and 1: it wins every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


class TranslationHealth:
    """Streaming accumulator of the P->A residual split by region, over one split's labelled P images.

    Args:
        clutter_threshold: off-mask pixels of ``x_P`` brighter than this are clutter (cluttered MNIST: digit
            strokes are up to 1, the background noise has sigma 0.01).
    """

    def __init__(self, *, clutter_threshold: float = 0.2) -> None:
        self.clutter_threshold = float(clutter_threshold)
        self.reset()

    def reset(self) -> None:
        """Forget every accumulated batch."""
        self._sums = dict.fromkeys(("removed", "object_intensity", "object_abs", "clutter_abs", "clutter_intensity",
                                    "total_abs", "n_object", "n_clutter", "n_pixels", "n_images"), 0.0)

    @torch.no_grad()
    def update(self, x_p: Tensor, x_pa: Tensor, mask: Tensor) -> None:
        """Add one batch.

        Shape:
            x_p, x_pa: (B, C, H, W) images and their P->A translations; mask: (B, 1, H, W) 0/1, the object.
        """
        if x_p.shape != x_pa.shape or mask.shape[0] != x_p.shape[0] or mask.shape[2:] != x_p.shape[2:]:
            raise ValueError(f"x_p {tuple(x_p.shape)}, x_pa {tuple(x_pa.shape)} and mask {tuple(mask.shape)} must "
                             "be (B, C, H, W), (B, C, H, W) and (B, 1, H, W)")
        x_p, x_pa = x_p.detach().double().cpu(), x_pa.detach().double().cpu()
        obj = mask.detach().cpu().bool().expand_as(x_p)                    # (B, C, H, W)
        clutter = ~obj & (x_p > self.clutter_threshold)
        diff = x_p - x_pa
        s = self._sums
        s["removed"] += float(diff[obj].sum())
        s["object_intensity"] += float(x_p[obj].sum())
        s["object_abs"] += float(diff[obj].abs().sum())
        s["clutter_abs"] += float(diff[clutter].abs().sum())
        s["clutter_intensity"] += float(x_p[clutter].abs().sum())
        s["total_abs"] += float(diff.abs().sum())
        s["n_object"] += float(obj.sum())
        s["n_clutter"] += float(clutter.sum())
        s["n_pixels"] += float(obj.numel())
        s["n_images"] += float(x_p.shape[0])

    def compute(self) -> dict[str, Any]:
        """The health numbers; a ratio with a zero denominator is None."""
        s = self._sums

        def ratio(a: str, b: str) -> float | None:
            return s[a] / s[b] if s[b] > 0 else None

        return {"object_removed": ratio("removed", "object_intensity"),
                "clutter_changed": ratio("clutter_abs", "clutter_intensity"),
                "residual_on_object": ratio("object_abs", "total_abs"),
                "object_area": ratio("n_object", "n_pixels"),
                "residual_object_mean": ratio("object_abs", "n_object"),
                "residual_clutter_mean": ratio("clutter_abs", "n_clutter"),
                "n_images": int(s["n_images"])}


def image_scores(logits: Sequence[Tensor]) -> Tensor:
    """One score per image from a multi-scale patch discriminator: patch mean per scale, then mean over scales.

    Shape:
        logits: list of (B, 1, h_s, w_s). Returns (B,).
    """
    return torch.stack([m.float().flatten(1).mean(1) for m in logits]).mean(0)


def disc_accuracy(real: Tensor, fake: Tensor) -> dict[str, float]:
    """Share of ``real`` scores > 0 and of ``fake`` scores < 0 (the hinge loss's decision).

    Shape:
        real: (N,), fake: (M,) image scores. Returns {"real", "fake"}.
    """
    if real.numel() == 0 or fake.numel() == 0:
        raise ValueError("disc_accuracy needs at least one real and one fake score")
    return {"real": float((real > 0).float().mean()), "fake": float((fake < 0).float().mean())}
