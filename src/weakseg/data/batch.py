"""The sample and batch contract shared by every method.

One sample is an image ``(C, *S)`` float tensor, a per-class label status ``(K,)`` (codes from
``weakseg.data.status``) and an optional mask ``(K, *S)`` of 0/1 per class. A batch stacks samples;
samples without a mask get zeros and ``has_mask = False``, so a batch never holds ``None`` entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from weakseg.data.status import MASK


@dataclass(frozen=True)
class Sample:
    """One image with what is known about its labels.

    Shape:
        image: (C, *S) float32; status: (K,) int8 codes; mask: (K, *S) uint8 or None.
    """

    image: Tensor
    status: Tensor
    mask: Tensor | None = None
    case_id: str = ""


@dataclass
class Batch:
    """A stack of samples; masks exist for every sample (zeros where ``has_mask`` is False).

    Shape:
        image: (B, C, *S) float32; status: (B, K) int8; mask: (B, K, *S) uint8; has_mask: (B,) bool;
        index: (B,) int64 position of each sample in its source set (-1 when unknown).
        host_status / host_has_mask: CPU copies of ``status`` / ``has_mask`` kept when the batch lives on
        an accelerator, so that steps decide which loss terms exist without a host-device sync; None when
        the batch was built on the device with no host copy (then ``host_flags`` reads the device, a sync).
    """

    image: Tensor
    status: Tensor
    mask: Tensor
    has_mask: Tensor
    index: Tensor
    case_ids: tuple[str, ...] = field(default_factory=tuple)
    host_status: Tensor | None = None
    host_has_mask: Tensor | None = None

    def __len__(self) -> int:
        return self.image.shape[0]

    @property
    def class_has_mask(self) -> Tensor:
        """(B, K) bool: the class's mask is given (status ``mask``) and the sample carries one."""
        return (self.status == MASK) & self.has_mask[:, None]

    def host_flags(self) -> tuple[Tensor, Tensor]:
        """``(status, has_mask)`` on the CPU: (B, K) int8 and (B,) bool.

        Free when the batch is on the CPU or carries host copies (every loader-built batch does); otherwise
        this copies from the device, which synchronises it.
        """
        if self.status.device.type == "cpu":
            return self.status, self.has_mask
        if self.host_status is not None and self.host_has_mask is not None:
            return self.host_status, self.host_has_mask
        return self.status.cpu(), self.has_mask.cpu()

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> Batch:
        """Move every tensor to ``device``; CPU copies of status / has_mask stay behind (``host_flags``)."""
        host_status, host_has_mask = ((self.status, self.has_mask) if self.status.device.type == "cpu"
                                      else (self.host_status, self.host_has_mask))
        return replace(
            self,
            host_status=host_status,
            host_has_mask=host_has_mask,
            image=self.image.to(device, non_blocking=non_blocking),
            status=self.status.to(device, non_blocking=non_blocking),
            mask=self.mask.to(device, non_blocking=non_blocking),
            has_mask=self.has_mask.to(device, non_blocking=non_blocking),
            index=self.index.to(device, non_blocking=non_blocking),
        )

    def select(self, keep: Tensor) -> Batch:
        """Sub-batch of the rows where ``keep`` (B,) bool is True."""
        ids = tuple(c for c, k in zip(self.case_ids, keep.tolist()) if k) if self.case_ids else ()
        host = keep.cpu()
        return Batch(self.image[keep], self.status[keep], self.mask[keep], self.has_mask[keep],
                     self.index[keep], ids,
                     None if self.host_status is None else self.host_status[host],
                     None if self.host_has_mask is None else self.host_has_mask[host])


def collate_samples(samples: Sequence[Sample]) -> Batch:
    """Stack samples with and without masks into one ``Batch``.

    Raises ``ValueError`` when image sizes or class counts differ (say which sample).
    """
    if not samples:
        raise ValueError("collate_samples: empty list of samples")
    first = samples[0]
    k = first.status.shape[0]
    spatial = tuple(first.image.shape[1:])
    masks = []
    for i, s in enumerate(samples):
        if tuple(s.image.shape[1:]) != spatial or s.status.shape != (k,):
            raise ValueError(f"collate_samples: sample {i} ({s.case_id or 'no id'}) has image "
                             f"{tuple(s.image.shape)} / status {tuple(s.status.shape)}, expected "
                             f"(C, {spatial}) / ({k},)")
        if s.mask is None:
            masks.append(torch.zeros((k, *spatial), dtype=torch.uint8))
        else:
            if tuple(s.mask.shape) != (k, *spatial):
                raise ValueError(f"collate_samples: sample {i} ({s.case_id or 'no id'}) mask "
                                 f"{tuple(s.mask.shape)} != {(k, *spatial)}")
            masks.append(s.mask.to(torch.uint8))
    return Batch(
        image=torch.stack([s.image.float() for s in samples]),          # (B, C, *S)
        status=torch.stack([s.status.to(torch.int8) for s in samples]),  # (B, K)
        mask=torch.stack(masks),                                         # (B, K, *S)
        has_mask=torch.tensor([s.mask is not None for s in samples]),    # (B,)
        index=torch.full((len(samples),), -1, dtype=torch.int64),
        case_ids=tuple(s.case_id for s in samples),
    )
