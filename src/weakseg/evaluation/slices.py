"""Running a 2D segmenter over a stack of slices: the model driver shared by scoring and ``weakseg predict``.

Whole-volume validation (``weakseg.evaluation.brats_volumes``) and prediction call the same function, so what
validation reports is what ``weakseg predict`` + ``weakseg score`` would say.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

#: test-time augmentation flips of the last two axes: identity, left-right, up-down, both
FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def predict_slices(segment: Callable[[Tensor], Tensor], slices: np.ndarray, *, batch_size: int,
                   device: torch.device, class_index: int = 0, tta: bool = False,
                   window: tuple[int, int] | None = None) -> np.ndarray:
    """Sigmoid probabilities of one class for a stack of 2D slices, in batches.

    ``window``: the training slice shape; when the slices differ from it, MONAI's
    ``sliding_window_inference`` runs the model on windows of that shape (Gaussian blending, overlap 0.25).
    ``tta``: mean probability over the four flips of ``FLIPS``.

    Shape:
        slices: (N, C, H, W) float32 -> returns (N, H, W) float32.
    """
    from monai.inferers import sliding_window_inference   # noqa: PLC0415 (MONAI is slow to import)

    windowed = window is not None and tuple(slices.shape[2:]) != tuple(window)

    def run(x: Tensor) -> Tensor:
        if windowed:
            logits = sliding_window_inference(x, roi_size=window, sw_batch_size=batch_size, predictor=segment,
                                              overlap=0.25, mode="gaussian")
        else:
            logits = segment(x)
        return torch.sigmoid(logits[:, class_index].float())           # (B, H, W)

    out = np.zeros((slices.shape[0], *slices.shape[2:]), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, slices.shape[0], batch_size):
            x = torch.from_numpy(np.ascontiguousarray(slices[start:start + batch_size])).to(device)
            if tta:
                # a flip of the input's last axes (W, H) is undone on the (B, H, W) probabilities
                prob = torch.stack([run(x.flip(f)).flip(f) if f else run(x) for f in FLIPS]).mean(0)
            else:
                prob = run(x)
            out[start:start + x.shape[0]] = prob.cpu().numpy()
    return out
