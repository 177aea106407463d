"""``weakseg export nnunet``: a converted BraTS hemisphere dataset -> the nnU-Net v2 raw layout, one 2D case per slice.

The raw layout itself (``dataset.json``, case files, atomic writing) is ``weakseg.data.formats.nnunet_raw``'s.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from weakseg.data.brats.dataset import BratsSliceSet, layout_of, read_index
from weakseg.data.brats.preprocess import HemisphereLayout
from weakseg.data.formats.nnunet_raw import write_nnunet_dataset
from weakseg.data.status import ABSENT, PRESENT


def export_nnunet(converted: str | os.PathLike, dst: str | os.PathLike, *, include: str = "pa",
                  overwrite: bool = False) -> dict[str, Any]:
    """Export a converted BraTS hemisphere dataset to the nnU-Net raw layout, one 2D case per slice.

    Train and valid slices go to ``imagesTr``/``labelsTr`` (``splits_final.json`` keeps them apart), test
    slices to ``imagesTs`` (labels in ``labelsTs``). Each slice is a NIfTI of shape (W, H, 1) in canonical
    RAS order whose affine places it where it lay in its patient's scan. Statuses go into the ``weakseg``
    block: A -> ``absent`` (label zeros), unlabelled P -> ``present`` (label filled with ``ignore``),
    labelled slices -> ``mask`` (the default).
    """
    converted, dst = Path(converted), Path(dst)
    index = read_index(converted)
    sets = {s: BratsSliceSet(converted, s, include=include) for s in ("train", "valid", "test")}
    need_ignore = bool((sets["train"].status[:, 0] == PRESENT).any())
    labels = {"background": 0, "tumour": 1, **({"ignore": 2} if need_ignore else {})}
    status_cases: dict[str, Any] = {}
    block = {"format": 1, "default_status": "mask", "cases": status_cases}   # filled while writing cases
    split_ids: dict[str, list[str]] = {s: [] for s in sets}

    def cases() -> Iterable[dict[str, Any]]:
        for split, ds in sets.items():
            for i in range(len(ds)):
                pid, cid, code = ds.patients[ds.patient[i]], ds.case_id(i), int(ds.status[i, 0])
                rows = np.array([i])
                img = ds.images_at(rows)[0]                               # (C, H, W)
                lab = ds.ground_truth_at(rows)[0, 0]                      # (H, W)
                if code == PRESENT:
                    lab = np.full_like(lab, labels["ignore"])
                    status_cases[cid] = {"status": {"tumour": "present"}}
                elif code == ABSENT:
                    lab = np.zeros_like(lab)
                    status_cases[cid] = {"status": {"tumour": "absent"}}
                split_ids[split].append(cid)
                affine = _slice_affine(index, pid, int(ds.z[i]), int(ds.side[i]), layout_of(index, pid))
                yield {"case_id": cid, "split": "test" if split == "test" else "train", "affine": affine,
                       "channels": [c.T[:, :, None] for c in img],            # (W, H, 1) each
                       "label": lab.T[:, :, None]}                            # (W, H, 1)

    write_nnunet_dataset(dst, cases(), channel_names=index["channel_names"], labels=labels, weakseg_block=block,
                         overwrite=overwrite, msd_training_list=True, splits_final=split_ids)
    return {"destination": str(dst.resolve()), "labels": labels,
            "cases": {s: len(v) for s, v in split_ids.items()},
            "status_counts": {w: sum(1 for c in status_cases.values() if c["status"]["tumour"] == w)
                              for w in ("present", "absent")}}


def _slice_affine(index: Mapping[str, Any], pid: str, z: int, side: int,
                  layout: HemisphereLayout) -> np.ndarray:
    """Affine of one exported slice: NIfTI voxel (i, j, 0) is canonical voxel (x0 + i, j, z) of its patient."""
    canon = np.asarray(index["patients"][pid]["canonical_affine"])
    x0 = layout.midline - layout.width if side == 0 else layout.midline
    t = np.eye(4)
    t[:3, 3] = (x0, 0, z)
    if side == 1 and layout.flip_x_hi:
        t[0, 0], t[0, 3] = -1.0, x0 + layout.width - 1
    return canon @ t
