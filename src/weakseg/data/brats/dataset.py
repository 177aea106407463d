"""The converted BraTS hemisphere-slice dataset: ``convert.convert_brats`` writes it, ``BratsSliceSet`` reads it.

On-disk layout (every array a plain ``.npy``, opened with ``np.load(mmap_mode="r")``)::

    DST/
      index.json                 # channel names, options, patient lists and geometry, counts
      conversion_report.json     # what the conversion did (counts, labelled patients, options, version)
      splits.json                # patient ids per split (reusable as a split file)
      train/ valid/ test/
        images.npy       (N, C, H, W) float16   normalised hemisphere slices
        masks.npy        (N, 1, H, W) uint8     target region (ground truth, every row)
        patient.npy      (N,) int32             index into index.json splits[split].patients
        z.npy            (N,) int16             canonical axial slice
        side.npy         (N,) uint8             0 = x_lo (patient left), 1 = x_hi (right)
        kind.npy         (N,) int8              1 = P, 0 = A, -1 = other (little tumour or little brain)
        labelled.npy     (N,) bool              mask usable for training (whole-patient labelled fraction)
        tumour_area.npy  (N,) int32, brain_area.npy (N,) int32   pixels

Training rows are P and A slices only; validation and test rows are every slice of every patient (for
volume rebuild).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from weakseg.data.batch import Batch
from weakseg.data.brats.preprocess import KIND_A, KIND_OTHER, KIND_P, SIDES, HemisphereLayout
from weakseg.data.brats.splits import SPLITS
from weakseg.data.status import ABSENT, MASK, PRESENT, UNKNOWN
from weakseg.errors import WeaksegError

FORMAT_NAME = "weakseg-brats-hemispheres"
FORMAT_VERSION = 1
ROW_ARRAYS: tuple[str, ...] = ("patient", "z", "side", "kind", "labelled", "tumour_area", "brain_area")


def read_index(root: str | os.PathLike) -> dict[str, Any]:
    """``index.json`` of a converted dataset, checked to be one."""
    root = Path(root)
    path = root / "index.json"
    if not path.is_file():
        raise WeaksegError(f"{root}: no index.json; this is not a converted BraTS dataset "
                           f"(run `weakseg convert brats SRC DST` first, or the conversion did not finish)")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT_NAME:
        raise WeaksegError(f"{path}: format {index.get('format')!r} is not {FORMAT_NAME!r}")
    return index


def layout_of(index: dict[str, Any], patient_id: str) -> HemisphereLayout:
    """The hemisphere cut of one patient (for rebuilding volumes with ``preprocess.volume_from_slices``)."""
    d = index["patients"][patient_id]["layout"]
    return HemisphereLayout(tuple(d["canonical_shape"]), int(d["midline"]), int(d["width"]), bool(d["flip_x_hi"]))


class BratsSliceSet:
    """One split of a converted BraTS dataset, as a ``SampleSet`` read lazily from memory maps.

    Status (one class, ``tumour``): A -> ``absent``; P of a labelled patient -> ``mask``; P of an
    unlabelled patient -> ``present``. Validation and test rows are all labelled (their P and other rows
    are ``mask``). ``include="pa"`` keeps P and A rows (training and the
    reference's slice-level scoring); ``"all"`` keeps every stored row (volume rebuild).

    Shape:
        status: (N, 1) int8; has_mask: (N,) bool; mask_nonempty: (N, 1) bool; batch images (B, C, H, W).
    """

    class_names: tuple[str, ...] = ("tumour",)

    def __init__(self, root: str | os.PathLike, split: str, *, include: str = "pa") -> None:
        if split not in SPLITS:
            raise WeaksegError(f"split {split!r}: use one of {', '.join(SPLITS)}")
        if include not in ("pa", "all"):
            raise WeaksegError(f"include {include!r}: use 'pa' or 'all'")
        self.root = Path(root)
        self.split = split
        self.include = include
        self.index = read_index(self.root)
        self.channel_names = tuple(self.index["channel_names"])
        self.patients = tuple(self.index["splits"][split]["patients"])
        folder = self.root / split
        cols = {k: np.load(folder / f"{k}.npy") for k in ROW_ARRAYS}
        self._images = np.load(folder / "images.npy", mmap_mode="r")     # (N_all, C, H, W)
        self._masks = np.load(folder / "masks.npy", mmap_mode="r")       # (N_all, 1, H, W)
        rows = np.nonzero(cols["kind"] != KIND_OTHER)[0] if include == "pa" else np.arange(len(cols["kind"]))
        self.rows = rows
        for k, v in cols.items():
            setattr(self, k, v[rows])
        status = np.full(len(rows), UNKNOWN, dtype=np.int8)
        status[self.kind == KIND_P] = PRESENT
        status[self.labelled & (self.kind != KIND_A)] = MASK
        status[self.kind == KIND_A] = ABSENT                             # A rows: known empty, no mask needed
        given = status == MASK
        self.status = torch.from_numpy(status)[:, None]                  # (N, 1)
        self.has_mask = torch.from_numpy(given)                          # (N,)
        self.mask_nonempty = torch.from_numpy((self.tumour_area > 0) & given)[:, None]   # (N, 1)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def in_channels(self) -> int:
        return int(self._images.shape[1])

    @property
    def spatial_shape(self) -> tuple[int, int]:
        return int(self._images.shape[2]), int(self._images.shape[3])

    def case_id(self, i: int) -> str:
        """``<patient>_<side>_z<z>`` of row ``i``."""
        return f"{self.patients[self.patient[i]]}_{SIDES[self.side[i]]}_z{int(self.z[i]):03d}"

    def _read(self, array: np.ndarray, idx: np.ndarray) -> np.ndarray:
        file_rows = self.rows[idx]
        order = np.argsort(file_rows, kind="stable")                     # read in file order, then undo
        undo = np.empty_like(order)
        undo[order] = np.arange(len(order))
        return np.asarray(array[file_rows[order]])[undo]

    def images_at(self, idx: np.ndarray) -> np.ndarray:
        """Images of rows ``idx`` as float32. Shape: idx (B,) -> (B, C, H, W)."""
        return self._read(self._images, np.asarray(idx, dtype=np.int64)).astype(np.float32)

    def ground_truth_at(self, idx: np.ndarray) -> np.ndarray:
        """Full ground-truth masks of rows ``idx``, labelled or not: for evaluation and export only, never
        for training (``batch`` hides unlabelled masks). Shape: idx (B,) -> (B, 1, H, W) uint8."""
        return self._read(self._masks, np.asarray(idx, dtype=np.int64))

    def batch(self, index: Tensor) -> Batch:
        """Read rows ``index`` (B,) from disk; masks are zeros where the row has no usable mask."""
        idx = index.to(torch.int64).numpy()
        images = self.images_at(idx)                                     # (B, C, H, W)
        has = self.has_mask[idx]
        masks = self.ground_truth_at(idx) * has.numpy()[:, None, None, None].astype(np.uint8)   # (B, 1, H, W)
        return Batch(image=torch.from_numpy(images), status=self.status[idx], mask=torch.from_numpy(masks),
                     has_mask=has, index=torch.from_numpy(idx.copy()),
                     case_ids=tuple(self.case_id(i) for i in idx.tolist()))
