"""SMILEr's pseudo-labels on disk and on the training split: save, load, apply (smile.md §8).

The round driver (``weakseg.relabel.rounds``) is the only reader and writer. A round's pseudo-labels reach
training through the ``DataBundle`` the driver hands to ``fit``: its training split carries them
(``OrganSliceSet.pseudo_labels``), and the method's step adds them to SMILE's targets. The config of a
round names no pseudo-label file, so a finished run evaluates and predicts from its checkpoints alone,
wherever its folder has moved.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from weakseg.data.registry import DataBundle
from weakseg.data.status import PRESENT, is_missing
from weakseg.errors import WeaksegError

PSEUDO_DIR = "pseudo"                   # RUN_DIR/pseudo/round_<t>/{pseudo.pt,stats.json}


def pseudo_label_path(run_dir: str | Path, t: int) -> Path:
    """Where round ``t``'s pseudo-labels of the SMILEr run in ``run_dir`` live."""
    return Path(run_dir) / PSEUDO_DIR / f"round_{t}" / "pseudo.pt"


def save_pseudo_labels(path: str | Path, pseudo: Tensor) -> None:
    """Write pseudo-labels as packed bits (1 bit per pixel), atomically. Shape: pseudo (N, K, H, W) bool."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bits = torch.from_numpy(np.packbits(pseudo.numpy().reshape(-1)))
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"shape": list(pseudo.shape), "bits": bits}, tmp)
    tmp.replace(path)


def load_pseudo_labels(path: str | Path, shape: tuple[int, ...]) -> Tensor:
    """Read a file of ``save_pseudo_labels``. Shape: returns ``shape`` bool."""
    path = Path(path)
    if not path.is_file():
        raise WeaksegError(f"pseudo-labels {path} not found; the SMILEr round driver writes them (resume the whole "
                           "run: weakseg train --resume --out RUN)")
    saved = torch.load(path, weights_only=True)
    if tuple(saved["shape"]) != tuple(shape):
        raise WeaksegError(f"{path}: pseudo-labels of shape {tuple(saved['shape'])} do not fit the training "
                           f"set {tuple(shape)}; they were made for another dataset, fold or overlay")
    bits = np.unpackbits(saved["bits"].numpy(), count=int(np.prod(shape)))
    return torch.from_numpy(bits.reshape(shape).astype(bool))


def with_pseudo_labels(data: DataBundle, pseudo: Tensor) -> DataBundle:
    """A copy of ``data`` whose training split carries ``pseudo`` (the other splits are shared).

    Slices holding a pseudo-positive of a missing class get slice status ``present`` for it (the previous
    model says the organ is there), so slices of volumes that lost every annotation enter the ``all`` pool;
    their loss is unchanged (``present`` and ``unknown`` give the same W).

    Shape: pseudo (N, K, H, W) bool, like the training masks.
    """
    from weakseg.data.organs import OrganSliceSet

    train = data.split("train")
    if not isinstance(train, OrganSliceSet):
        raise WeaksegError(f"SMILEr's pseudo-labels need a multi-organ slice dataset (data.name=organs), got "
                           f"{type(train).__name__}")
    if tuple(pseudo.shape) != tuple(train.masks.shape):
        raise WeaksegError(f"pseudo-labels of shape {tuple(pseudo.shape)} do not fit the training set "
                           f"{tuple(train.masks.shape)}")
    has = pseudo.flatten(2).any(-1)                                                     # (N, K)
    status = torch.where(has & is_missing(train.status), torch.full_like(train.status, PRESENT), train.status)
    relabelled = train.with_status(status)
    relabelled.pseudo_labels = pseudo
    return dataclasses.replace(data, splits={**data.splits, "train": relabelled})
