"""Loss terms on the labelled rows of a batch: the Dice of those rows alone, decided without a device sync."""

from __future__ import annotations

import torch

from tests.methods.test_genseg import batches
from weakseg.data.batch import Batch
from weakseg.data.status import PRESENT
from weakseg.losses.labelled import labelled_dice


def test_labelled_dice_equals_the_dice_of_the_labelled_rows_alone() -> None:
    from weakseg.losses.functional import soft_dice_loss_batch

    b = batches(n=4, labelled=2)["p"]
    logits = torch.randn(4, 1, 32, 32, requires_grad=True)
    got = labelled_dice(logits, b, 0)
    want = soft_dice_loss_batch(torch.sigmoid(logits[:2]), b.mask[:2].float())
    torch.testing.assert_close(got, want)
    got.backward()
    assert logits.grad[2:].abs().sum() == 0 and logits.grad[:2].abs().sum() > 0   # unlabelled rows: no gradient


def test_labelled_dice_reads_term_presence_from_the_host_copy(monkeypatch) -> None:
    # On a GPU the device status must not be read back; the decision comes from Batch.host_flags().
    b = batches(n=2, labelled=1)["p"]
    logits = torch.randn(2, 1, 32, 32)
    assert labelled_dice(logits, b, 0) is not None
    monkeypatch.setattr(Batch, "host_flags", lambda self: (torch.full_like(self.status, PRESENT),
                                                           torch.zeros_like(self.has_mask)))
    assert labelled_dice(logits, b, 0) is None
