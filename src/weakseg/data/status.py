"""Label status per (case, class): the one description both method families read.

Every (case, class) pair carries exactly one status (``smile.md`` §15):

- ``mask``: annotated, a voxel mask is given (it may be empty);
- ``present``: known present, no mask (a GenSeg "P" image without a mask);
- ``absent``: known absent, every pixel is a negative for the class (a GenSeg "A" image);
- ``unknown``: not annotated, nothing is known.

In tensors statuses are small integer codes (``STATUS_CODES``) so batches carry them as ``(B, K)``
int8 tensors instead of Python lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch
from torch import Tensor

from weakseg.errors import WeaksegError

Status = Literal["mask", "present", "absent", "unknown"]
STATUSES: tuple[Status, ...] = ("mask", "present", "absent", "unknown")
STATUS_CODES: dict[str, int] = {name: code for code, name in enumerate(STATUSES)}
MASK, PRESENT, ABSENT, UNKNOWN = (STATUS_CODES[s] for s in STATUSES)


def status_code(name: str, *, where: str = "status") -> int:
    """Integer code of a status word; raises naming ``where`` and the valid words."""
    if name not in STATUS_CODES:
        raise WeaksegError(f"{where}: unknown label status {name!r}; use one of {', '.join(STATUSES)}")
    return STATUS_CODES[name]


def encode_statuses(names: Iterable[str], *, where: str = "status") -> Tensor:
    """Status words -> int8 codes. Shape: returns (K,)."""
    return torch.tensor([status_code(n, where=where) for n in names], dtype=torch.int8)


def decode_statuses(codes: Tensor) -> list[str]:
    """int8 codes -> status words. Shape: codes (K,)."""
    return [STATUSES[int(c)] for c in codes.tolist()]


def presence_domain(status: Tensor, mask: Tensor | None = None) -> Tensor:
    """Which samples are P (class present) for a class of interest.

    P = ``present``, or ``mask`` with a non-empty mask. When ``mask`` is None every ``mask`` sample is
    taken as non-empty.

    Shape:
        status: (N,) codes for one class; mask: (N, *S) or None. Returns (N,) bool.
    """
    is_p = status == PRESENT
    if mask is None:
        return is_p | (status == MASK)
    nonempty = mask.flatten(1).any(1)
    return is_p | ((status == MASK) & nonempty)


def absence_domain(status: Tensor, mask: Tensor | None = None) -> Tensor:
    """Which samples are A (class absent): ``absent``, or ``mask`` with an empty mask.

    Shape:
        status: (N,) codes for one class; mask: (N, *S) or None. Returns (N,) bool.
    """
    is_a = status == ABSENT
    if mask is None:
        return is_a
    empty = ~mask.flatten(1).any(1)
    return is_a | ((status == MASK) & empty)
