"""Sample sets: indexable collections that gather whole batches at once.

A ``SampleSet`` exposes per-sample label knowledge (``status``, ``has_mask``, ``mask_nonempty``) without
loading images, so samplers can build P / A / labelled pools cheaply, and gathers a ``Batch`` for a
tensor of indices in one vectorised call (no per-sample Python loop for in-memory data).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from weakseg.data.batch import Batch
from weakseg.data.status import MASK


@runtime_checkable
class SampleSet(Protocol):
    """What training, evaluation and samplers need from a dataset split.

    Shape:
        status: (N, K) int8 codes; has_mask: (N,) bool; mask_nonempty: (N, K) bool.
    """

    status: Tensor
    has_mask: Tensor
    mask_nonempty: Tensor
    class_names: tuple[str, ...]

    def __len__(self) -> int: ...

    @property
    def in_channels(self) -> int: ...

    def batch(self, index: Tensor) -> Batch: ...


class TensorSampleSet:
    """A sample set held in memory as stacked tensors.

    Shape:
        images: (N, C, *S) float; status: (N, K) int8; masks: (N, K, *S) uint8 (zeros where no mask);
        has_mask: (N,) bool.
    """

    def __init__(
        self,
        images: Tensor,
        status: Tensor,
        masks: Tensor,
        has_mask: Tensor,
        *,
        class_names: Sequence[str],
        case_ids: Sequence[str] | None = None,
    ) -> None:
        n = images.shape[0]
        if status.shape != (n, len(class_names)):
            raise ValueError(f"status shape {tuple(status.shape)} != ({n}, {len(class_names)})")
        if masks.shape[:2] != (n, len(class_names)) or masks.shape[2:] != images.shape[2:]:
            raise ValueError(f"masks shape {tuple(masks.shape)} does not match images {tuple(images.shape)} "
                             f"and {len(class_names)} classes")
        if has_mask.shape != (n,):
            raise ValueError(f"has_mask shape {tuple(has_mask.shape)} != ({n},)")
        self.images = images.float()
        self.status = status.to(torch.int8)
        self.masks = masks.to(torch.uint8)
        self.has_mask = has_mask.bool()
        self.class_names = tuple(class_names)
        self.case_ids = tuple(case_ids) if case_ids is not None else None
        given = (self.status == MASK) & self.has_mask[:, None]                  # (N, K)
        self.mask_nonempty = self.masks.flatten(2).any(-1) & given               # (N, K)
        self._gather = (self.status, self.has_mask)   # copies on the images' device, for `batch`

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def in_channels(self) -> int:
        return self.images.shape[1]

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[2:])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> TensorSampleSet:
        """A shallow copy whose images and masks (and gather copies of status / has_mask) live on ``device``.

        ``status``, ``has_mask`` and ``mask_nonempty`` stay on the CPU for pools and metrics. Moving an
        in-memory training set to the GPU once means batch gathering never waits on the host.
        """
        out = copy.copy(self)
        out.images = self.images.to(device)
        out.masks = self.masks.to(device)
        out._gather = (self.status.to(device), self.has_mask.to(device))
        return out

    def batch(self, index: Tensor) -> Batch:
        """Gather the samples at ``index`` (any device). Case ids are filled only for a CPU ``index``: reading
        a GPU index on the host would synchronise every training step."""
        index = index.to(torch.int64)
        ids = (tuple(self.case_ids[i] for i in index.tolist())
               if self.case_ids is not None and index.device.type == "cpu" else ())
        on = index.to(self.images.device)
        status, has_mask = self._gather
        return Batch(self.images[on], status[on], self.masks[on], has_mask[on], on.clone(), ids)

    def subset(self, keep: Tensor) -> TensorSampleSet:
        """A new set with the rows where ``keep`` (N,) bool is True (or the given indices)."""
        idx = keep.nonzero().squeeze(1) if keep.dtype == torch.bool else keep
        ids = [self.case_ids[i] for i in idx.tolist()] if self.case_ids is not None else None
        return TensorSampleSet(self.images[idx], self.status[idx], self.masks[idx], self.has_mask[idx],
                               class_names=self.class_names, case_ids=ids)
