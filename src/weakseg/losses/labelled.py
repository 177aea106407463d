"""Loss terms on the labelled rows of a batch, shared by the GenSeg, AE and mean-teacher steps.

Rows are selected by a 0/1 weight rather than by boolean indexing: shapes stay fixed and the device
never waits on the host to learn how many rows were selected.
"""

from __future__ import annotations

import torch
from torch import Tensor

from weakseg.data.batch import Batch
from weakseg.data.status import MASK
from weakseg.losses.functional import soft_dice_loss_batch


def row_weight(rows: Tensor, like: Tensor) -> Tensor:
    """A (B,) bool row selection as a float32 0/1 weight broadcastable against ``like`` (B, ...): selecting
    rows by weight instead of boolean indexing keeps shapes fixed and the device free of syncs."""
    return rows.to(torch.float32).view(-1, *([1] * (like.dim() - 1)))


def labelled_dice(logits: Tensor, batch: Batch, k: int) -> Tensor | None:
    """Batch soft Dice (1 + L_Dice, pooled) on the labelled images of ``batch``; None when it has none.

    Whether the term exists is read from the batch's host copy of the label status, and the labelled rows
    enter by a 0/1 weight instead of boolean indexing: neither synchronises the device with the host.
    Unlabelled rows contribute zero to every sum (and get zero gradient), exactly as if left out.
    """
    status, has_mask = batch.host_flags()
    if not bool(((status[:, k] == MASK) & has_mask).any()):              # host tensors: no device sync
        return None
    weight = row_weight(batch.class_has_mask[:, k], logits)                            # (B, 1, 1, 1)
    probs = torch.sigmoid(logits[:, k:k + 1].float()) * weight                        # (B, 1, H, W)
    return soft_dice_loss_batch(probs, batch.mask[:, k:k + 1].float() * weight)
