"""``nn.Module`` wrapper of the batch soft Dice loss."""

from __future__ import annotations

from torch import Tensor, nn

from weakseg.losses.functional import soft_dice_loss_batch


class SoftDiceLoss(nn.Module):
    """GenSeg's batch soft Dice loss, ``1 - (2 sum(yp) + smooth) / (sum(y) + sum(p) + smooth)``.

    Shape:
        probs, target: (B, K, *S). Returns a scalar.
    """

    def __init__(self, *, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = float(smooth)

    def forward(self, probs: Tensor, target: Tensor) -> Tensor:
        return soft_dice_loss_batch(probs, target, smooth=self.smooth)

    def extra_repr(self) -> str:
        return f"smooth={self.smooth}"
