"""Pools (which samples a stream may draw) and resumable, seeded batch streams.

Pools are read from label status only, never from hidden ground truth:

- ``labelled``: samples whose class-of-interest mask is given and non-empty (seg-only trains on these);
- ``p``: the presence domain (``present``, or ``mask`` non-empty);
- ``a``: the absence domain (``absent``, or ``mask`` empty);
- ``unlabelled_p``: P samples without a mask;
- ``any_positive``: samples with a non-empty given mask of any class (multi-class half-positive
  sampling, smile.md §6; visible labels only);
- ``all``: every sample with at least one known label (a case with every class ``unknown`` carries no
  signal and is skipped).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

import torch
from torch import Tensor

from weakseg.data.batch import Batch
from weakseg.data.datasets import SampleSet
from weakseg.data.status import ABSENT, MASK, PRESENT, UNKNOWN
from weakseg.errors import WeaksegError

Pool = Literal["labelled", "p", "a", "unlabelled_p", "any_positive", "all"]
POOLS: tuple[str, ...] = ("labelled", "p", "a", "unlabelled_p", "any_positive", "all")


def pool_indices(data: SampleSet, pool: str, *, class_index: int = 0) -> Tensor:
    """Indices of the samples of ``data`` in ``pool`` for the class ``class_index``. Returns (M,) int64."""
    status = data.status[:, class_index]                                   # (N,)
    given = (status == MASK) & data.has_mask                               # (N,)
    nonempty = data.mask_nonempty[:, class_index]                          # (N,)
    if pool == "labelled":
        keep = given & nonempty
    elif pool == "p":
        keep = (status == PRESENT) | (given & nonempty)
    elif pool == "a":
        keep = (status == ABSENT) | (given & ~nonempty)
    elif pool == "unlabelled_p":
        keep = status == PRESENT
    elif pool == "any_positive":
        keep = ((data.status == MASK) & data.mask_nonempty).any(1) & data.has_mask
    elif pool == "all":
        keep = (data.status != UNKNOWN).any(1)
    else:
        raise WeaksegError(f"unknown sample pool {pool!r}; use one of {', '.join(POOLS)}")
    return keep.nonzero().squeeze(1)


class BatchStream(Iterator[Batch]):
    """Endless batches drawn from ``indices`` of ``data`` in seeded, reshuffled epochs.

    A pool smaller than the batch is cycled through several permutations. ``state_dict`` captures the
    position and the generator, so a resumed run draws exactly the batches it would have drawn.

    ``batch_size`` is the global batch. With ``world_size`` > 1 every rank holds the same seeded stream
    (the same permutations) and takes its contiguous share ``batch_size / world_size`` of each global
    batch, rank ``r`` the ``r``-th share: 2 ranks x B/2 see exactly the images of 1 rank x B, and the
    state (epoch, position, permutation, generator) is the same for any world size, so a run can resume
    with another number of processes. With ``device`` set (the device of an in-memory set moved there),
    the current permutation is copied there once per epoch and batches are indexed on the device.
    """

    def __init__(self, data: SampleSet, indices: Tensor, batch_size: int, *, seed: int, name: str = "",
                 rank: int = 0, world_size: int = 1, device: torch.device | str | None = None) -> None:
        if batch_size < 1:
            raise WeaksegError(f"batch size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise WeaksegError(f"rank {rank} is not in [0, world size {world_size})")
        if batch_size % world_size:
            raise WeaksegError(f"train.batch_size={batch_size} is the global batch and must divide by the "
                               f"{world_size} processes; use a multiple of {world_size}, e.g. "
                               f"--set train.batch_size={max(world_size, batch_size // world_size * world_size)}")
        if indices.numel() == 0:
            raise WeaksegError(f"sample pool {name or '?'} is empty: the dataset has no sample of this kind "
                               "(check the labelled fraction and the label statuses)")
        self.data = data
        self.indices = indices.to(torch.int64).cpu()
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.local_batch_size = batch_size // world_size
        self.name = name
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self._pos = 0
        self._indices_dev = self.indices.to(self.device)
        self._set_perm(torch.randperm(len(self.indices), generator=self.generator))

    def _set_perm(self, perm: Tensor) -> None:
        self._perm = perm
        self._order = self.indices[perm]                                   # (M,) sample indices in draw order
        self._order_dev = (self._order if self.device.type == "cpu"         # the same, on the set's device
                           else self._indices_dev[perm.to(self.device)])

    def _take(self) -> tuple[Tensor, Tensor]:
        """This rank's indices of the next global batch, on the set's device and on the host.

        Returns two (batch_size / world_size,) int64 tensors with the same values (one tensor twice on CPU).
        """
        on_cpu = self.device.type == "cpu"
        host, dev = [], []                                                 # chunks, possibly across epochs
        need = self.batch_size
        while need > 0:
            if self._pos >= len(self._perm):
                self._set_perm(torch.randperm(len(self.indices), generator=self.generator))
                self._pos = 0
                self.epoch += 1
            stop = min(self._pos + need, len(self._perm))
            host.append(self._order[self._pos:stop])
            if not on_cpu:
                dev.append(self._order_dev[self._pos:stop])
            need -= stop - self._pos
            self._pos = stop
        share = self.local_batch_size
        mine = slice(self.rank * share, (self.rank + 1) * share)
        host_idx = torch.cat(host)[mine]
        return (host_idx if on_cpu else torch.cat(dev)[mine]), host_idx

    def __next__(self) -> Batch:
        index, host = self._take()
        if self.device.type == "cpu":
            return self.data.batch(host)
        # Indexed on the device; the host keeps the flags so that steps never read them back (no sync).
        return replace(self.data.batch(index), host_status=self.data.status[host],
                       host_has_mask=self.data.has_mask[host])

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self._pos, "perm": self._perm.clone(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self._pos = int(state["pos"])
        self._set_perm(state["perm"].clone())
        self.generator.set_state(state["generator"])
