"""A stream that guarantees some labelled images per batch (``train.min_labeled_per_batch``).

At 1% labelled data most P batches hold no mask, so the Dice term of GenSeg, the AE baseline and the
mean teacher is usually absent (as in the reference, default 0). ``genseg.md`` §6 allows oversampling:
each batch then takes ``m`` images from the labelled pool and ``B - m`` from the stream's own pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from weakseg.data.batch import Batch
from weakseg.data.samplers import BatchStream


def concat_batches(a: Batch, b: Batch) -> Batch:
    """Rows of ``a`` then rows of ``b`` (host copies of the flags kept when both carry them)."""
    both = a.host_status is not None and b.host_status is not None
    return Batch(torch.cat([a.image, b.image]), torch.cat([a.status, b.status]), torch.cat([a.mask, b.mask]),
                 torch.cat([a.has_mask, b.has_mask]), torch.cat([a.index, b.index]), a.case_ids + b.case_ids,
                 torch.cat([a.host_status, b.host_status]) if both else None,
                 torch.cat([a.host_has_mask, b.host_has_mask]) if both else None)


class MixedStream(Iterator[Batch]):
    """Batches of ``labelled`` rows (m) followed by ``rest`` rows (B - m); resumable like ``BatchStream``."""

    def __init__(self, labelled: BatchStream, rest: BatchStream) -> None:
        self.labelled, self.rest = labelled, rest
        self.data, self.indices = rest.data, rest.indices   # what input checks read

    def __next__(self) -> Batch:
        return concat_batches(next(self.labelled), next(self.rest))

    def state_dict(self) -> dict[str, Any]:
        return {"labelled": self.labelled.state_dict(), "rest": self.rest.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.labelled.load_state_dict(state["labelled"])
        self.rest.load_state_dict(state["rest"])
