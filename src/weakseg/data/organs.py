"""Partially annotated multi-organ CT in the nnU-Net raw layout, as 2D axial slices (smile.md §3, §11, §15).

``build_organs`` reads ``data.organs.root`` (``dataset.json`` + ``imagesTr``/``labelsTr``), resolves the
label status of every (case, class) pair (``weakseg`` block, then the optional ``status_overlay``),
checks every case before training, splits the training volumes into folds and cuts them into slices.

Splits (5-fold cross-validation over volumes, seeded by ``data.data_seed``):

- ``test``: the volumes of fold ``data.organs.fold``, scored against their full ground truth;
- ``valid``: ``data.organs.n_valid`` volumes held out of the remaining ones, scored only on the classes
  annotated in them (``mask``/``absent`` after simulation): selection and monitoring never see hidden
  ground truth and never see the test fold. With ``data.organs.valid_reference=truth`` they are scored
  against their full withheld ground truth instead (simulations only: to choose settings, e.g. SMILEr's,
  on validation volumes rather than on the test fold);
- ``train``: the rest.

Hidden ground truth (pairs a simulation turned from ``mask`` into ``unknown``) never reaches a batch:
training masks are zeroed for every class whose status is not ``mask``. The full maps are kept apart in
``OrganSliceSet.truth`` for evaluation and SMILEr's pseudo-label precision (smile.md §8.4). Which pairs
are hidden is read from the overlay (``data.organs.status_overlay``) or from the manifest
``weakseg_simulation.json`` that ``weakseg simulate-missing`` writes beside ``dataset.json``; voxels of an
``unknown`` class anywhere else are an error (a dataset as declared must not contain them).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from torch import Tensor

from weakseg.config.choices import ValidReference, check_choice
from weakseg.data.datasets import TensorSampleSet
from weakseg.data.formats.nifti import geometry_problem, load_volume
from weakseg.data.formats.nnunet_raw import NnunetDataset, list_cases, read_dataset_json
from weakseg.data.folds import fold_split
from weakseg.data.simulate import MANIFEST_NAME, read_overlay
from weakseg.data.status import (
    MASK,
    check_label_statuses,
    classes_without_masks,
    is_missing,
    resolve_statuses,
    slice_status,
    status_codes_table,
)
from weakseg.errors import WeaksegError

_log = logging.getLogger("weakseg")


# ------------------------------------------------------------------------------------------- sample set
class OrganSliceSet(TensorSampleSet):
    """Axial slices of several volumes with the volume bookkeeping evaluation needs.

    ``masks`` hold only what training may see (``mask`` classes); ``truth`` is the full ground truth
    where known (``truth_status`` is ``mask``; never gathered into a batch) and ``eval_status`` the
    statuses scoring uses (``truth_status`` on the test split, the training statuses elsewhere).

    Shape:
        images: (N, 1, H, W) in [0, 1]; status, truth_status, eval_status: (N, K) int8;
        masks, truth: (N, K, H, W) uint8;
        volume, z: (N,) int64 (volume index, slice index); volumes: one dict per volume with
        ``case_id``, ``start``, ``depth``, ``spacing`` (dz, dy, dx) mm; pseudo_labels: (N, K, H, W) bool
        or None, extra positives a SMILEr round trains on (set by ``weakseg.relabel.pseudo_labels``).
    """

    def __init__(self, images: Tensor, status: Tensor, masks: Tensor, has_mask: Tensor, *,
                 class_names: Sequence[str], case_ids: Sequence[str], truth: Tensor, truth_status: Tensor,
                 eval_status: Tensor, volume: Tensor, z: Tensor, volumes: list[dict[str, Any]],
                 score_truth: bool) -> None:
        super().__init__(images, status, masks, has_mask, class_names=class_names, case_ids=case_ids)
        self.truth = truth.to(torch.uint8)
        self.truth_status = truth_status.to(torch.int8)   # 'mask' where ``truth`` holds the class's voxels
        self.eval_status = eval_status.to(torch.int8)
        self.volume = volume.long()
        self.z = z.long()
        self.volumes = volumes
        self.score_truth = score_truth          # score against truth (test) or against the visible masks
        self.pseudo_labels: Tensor | None = None

    def with_status(self, status: Tensor, *, masks: Tensor | None = None) -> OrganSliceSet:
        """Same slices with other training statuses (and masks); shares every other tensor."""
        masks = self.masks if masks is None else masks
        has_mask = (status == MASK).any(1)
        view = OrganSliceSet(self.images, status, masks * (status == MASK)[:, :, None, None], has_mask,
                             class_names=self.class_names, case_ids=self.case_ids, truth=self.truth,
                             truth_status=self.truth_status, eval_status=self.eval_status, volume=self.volume,
                             z=self.z, volumes=self.volumes,
                             score_truth=self.score_truth)
        view.pseudo_labels = self.pseudo_labels
        return view

    def materialised(self) -> OrganSliceSet:
        """The partial dataset read as plain nnU-Net reads it: every non-``absent`` class is ``mask``,
        hidden organs are background (the ``naive`` baseline). No hidden voxel is revealed: the masks of
        formerly missing classes are the zeros already stored."""
        status = torch.where(is_missing(self.status), torch.full_like(self.status, MASK), self.status)
        return self.with_status(status)


# ------------------------------------------------------------------------------------------ reading
@dataclass
class OrganVolume:
    """One case read, reoriented to RAS+ and cut in memory as (z, y, x).

    Shape:
        image: (D, H, W) float32 in [0, 1] after the HU window; label: (D, H, W) uint8 class ids 0..K.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]


def _canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """RAS+ reorientation (nibabel), returned as a (z, y, x) array and its (dz, dy, dx) spacing."""
    img = nib.as_closest_canonical(nib.Nifti1Image(array, affine))
    arr = np.asanyarray(img.dataobj)
    dx, dy, dz = (float(s) for s in img.header.get_zooms()[:3])
    return np.ascontiguousarray(arr.transpose(2, 1, 0)), (dz, dy, dx)


def read_organ_volume(case: Any, dataset: NnunetDataset, *, class_values: Sequence[int],
                      hu_window: Sequence[float]) -> OrganVolume:
    """Read one case: geometry check, undeclared label values, HU window to [0, 1], class remapping.

    ``class_values[k-1]`` is the dataset label value of class k; other declared values become background.
    """
    if len(case.images) != 1:
        raise WeaksegError(f"case {case.case_id}: the organs dataset reads one CT channel, found "
                           f"{len(case.images)} channel files; keep only the CT channel")
    image = load_volume(case.images[0], kind="image")
    label = load_volume(case.label, kind="label")
    problem = geometry_problem(image.shape[:3], image.affine, label.shape[:3], label.affine,
                               names=(case.images[0].name, case.label.name))
    if problem:
        raise WeaksegError(f"case {case.case_id}: image and label do not match: {problem}")
    declared = dataset.label_values()
    values = set(np.unique(label.array).tolist())
    extra = sorted(values - declared)
    if extra:
        raise WeaksegError(f"case {case.case_id}: label value(s) {extra} in {case.label.name} are not declared in "
                           f"dataset.json labels {dataset.labels}; fix the label file or declare the class")
    if "ignore" in dataset.labels and int(dataset.labels["ignore"]) in values:
        raise WeaksegError(f"case {case.case_id}: the nnU-Net 'ignore' label is not supported by the organs "
                           "dataset; mark unannotated classes 'unknown' in the weakseg block instead")
    lo, hi = float(hu_window[0]), float(hu_window[1])
    img_zyx, spacing = _canonical(image.array, image.affine)
    lab_zyx, _ = _canonical(label.array, label.affine)
    remap = np.zeros(max(declared) + 1, dtype=np.uint8)
    for k, v in enumerate(class_values, start=1):
        remap[v] = k
    lab_zyx = remap[lab_zyx.astype(np.int64)]
    return OrganVolume(case.case_id, window_hu(img_zyx, (lo, hi)), lab_zyx, spacing)


def window_hu(image: np.ndarray, hu_window: Sequence[float]) -> np.ndarray:
    """The CT window of training: clip to [low, high] HU and scale to [0, 1] (float32). Shape: any -> same."""
    lo, hi = float(hu_window[0]), float(hu_window[1])
    if not np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float32)
    out = np.clip(image, lo, hi)            # a new array: the in-place steps below touch only it (memory: one
    out -= lo                               # volume, not three temporaries, for CT-sized inputs)
    out /= hi - lo
    return out.astype(np.float32, copy=False)


def organ_contract(root: str | Path, *, classes: Sequence[str] = (),
                   hu_window: Sequence[float] = (-175.0, 250.0), slice_shape: Sequence[int] | None = None,
                   ) -> dict[str, Any]:
    """What predicting with an organs run needs to know about its training data (stored in checkpoints).

    ``channel_names`` (the dataset's, in index order), ``class_names`` (output channel order), ``labels``
    (the dataset's label value of every class: predictions are written with them), the preprocessing
    (``hu_window``; volumes reoriented to RAS+ and cut into axial slices along the third axis) and the
    training ``slice_shape`` (H, W) when known.
    """
    ds = read_dataset_json(root)
    classes = list(classes) or list(ds.class_names)
    return {
        "kind": "organs", "format": 1, "channel_names": [ds.channel_names[str(i)] for i in range(ds.n_channels)],
        "class_names": classes, "labels": {"background": 0, **{c: int(ds.labels[c]) for c in classes}},
        "hu_window": [float(v) for v in hu_window], "orientation": "RAS", "slice_axis": 2,
        "file_ending": ds.file_ending, "slice_shape": None if slice_shape is None else [int(s) for s in slice_shape],
    }


def hidden_pairs(declared: Mapping[str, Mapping[str, str]], final: Mapping[str, Mapping[str, str]],
                 manifest: Mapping[str, Any] | None) -> set[tuple[str, str]]:
    """(case, class) pairs whose annotation was hidden on purpose, so their voxels are ground truth.

    From an overlay: pairs that are ``mask`` as declared and missing after the overlay. From a
    ``simulate-missing`` manifest: its ``simulation.removed`` pairs (declared ``unknown`` in the copy),
    unless the copy was materialised (zeroed label files hold no truth).
    """
    out = {(c, k) for c, st in final.items() for k, s in st.items()
           if declared[c][k] == "mask" and s in ("unknown", "present")}
    sim = (manifest or {}).get("simulation") or {}
    if manifest is not None and not sim.get("materialised"):     # materialised copies lost the voxels
        removed = sim.get("removed") or {}
        for cls, cases in removed.items():
            out.update((c, cls) for c in cases if c in final)
    return out


def _read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise WeaksegError(f"{path}: not valid JSON ({err}); re-run weakseg simulate-missing") from None


@dataclass
class OrgansData:
    """What ``load_organs`` returns: the split sets and a JSON-ready summary."""

    splits: dict[str, OrganSliceSet]
    class_names: tuple[str, ...]
    info: dict[str, Any]
    contract: dict[str, Any] | None = None     # organ_contract: what prediction needs, stored in checkpoints


def load_organs(root: str | Path, *, classes: Sequence[str] = (), status_overlay: str | Path | None = None,
                fold: int = 0, n_folds: int = 5, n_valid: int = 2, seed: int = 0,
                hu_window: Sequence[float] = (-175.0, 250.0), full_labels: bool = False,
                valid_reference: ValidReference = "visible") -> OrgansData:
    """Read, check and split a partially annotated nnU-Net raw dataset into 2D slice sets.

    Args:
        classes: class names to train on, in output-channel order (default: every label of dataset.json).
        status_overlay: an overlay JSON (``weakseg.data.simulate.write_overlay``) applied last.
        full_labels: expose hidden ground truth to training (``oracle`` only): hidden pairs become ``mask``.
        valid_reference: ``visible`` (score validation volumes on their annotated classes) or ``truth``
            (against their full ground truth, as the test fold).

    Raises ``WeaksegError`` naming the case and the problem (undeclared label value, voxels of an
    ``absent`` class or of an ``unknown`` class that no simulation hid, image/label geometry), before any
    training; warns when a class is annotated in no training case.
    """
    root = Path(root)
    ds = read_dataset_json(root)
    all_classes = list(ds.class_names)
    classes = list(classes) or all_classes
    unknown = [c for c in classes if c not in all_classes]
    if unknown:
        raise WeaksegError(f"data.organs.classes: {unknown[0]!r} is not a label of {root / 'dataset.json'} "
                           f"(labels: {', '.join(all_classes)})")
    check_choice("data.organs.valid_reference", valid_reference, ValidReference)
    if len(hu_window) != 2 or not hu_window[0] < hu_window[1]:
        raise WeaksegError(f"data.organs.hu_window must be [low, high] with low < high, got {list(hu_window)}")
    cases = list_cases(root, "train", dataset=ds)
    ids = [c.case_id for c in cases]
    declared = resolve_statuses(ds.weakseg, ids, all_classes)
    overlay = read_overlay(status_overlay) if status_overlay else None
    final = resolve_statuses(ds.weakseg, ids, all_classes, overlay=overlay) if overlay else declared
    manifest = _read_manifest(root)
    hidden = hidden_pairs(declared, final, manifest)
    split = fold_split(ids, n_folds=n_folds, fold=fold, seed=seed, n_valid=n_valid)
    sim_fold = ((overlay or manifest or {}).get("simulation") or {}).get("fold")
    if sim_fold is not None and sim_fold != fold:
        raise WeaksegError(f"the status overlay / simulation manifest was made for fold {sim_fold} but "
                           f"data.organs.fold={fold}: its removals may touch this fold's test volumes; "
                           f"simulate again with --fold {fold}")
    # truth statuses: hidden pairs are annotated in the files (mask); everything else as resolved
    truth_st = {c: {k: ("mask" if (c, k) in hidden else s) for k, s in st.items()} for c, st in final.items()}
    train_st = {c: ({k: ("mask" if (c, k) in hidden else s) for k, s in st.items()} if full_labels else dict(st))
                for c, st in final.items()}

    class_values = [int(ds.labels[c]) for c in classes]
    volumes: dict[str, OrganVolume] = {}
    notes: list[str] = []
    for case in cases:
        vol = read_organ_volume(case, ds, class_values=class_values, hu_window=hu_window)
        st = {k: truth_st[case.case_id][k] for k in classes}
        notes += check_label_statuses(vol.label, st, classes, case_id=case.case_id, missing_with_voxels="error")
        volumes[case.case_id] = vol
    shapes = {v.image.shape[1:] for v in volumes.values()}
    if len(shapes) > 1:
        raise WeaksegError(f"{root}: volumes have different in-plane sizes {sorted(shapes)}; the organs dataset "
                           "stacks axial slices, resample every case to one in-plane grid first")

    train_status = {c: {k: train_st[c][k] for k in classes} for c in split["train"]}
    unlearnable = classes_without_masks(train_status, classes)
    for cls in unlearnable:
        msg = (f"class {cls!r} is annotated (status 'mask') in no training volume of fold {fold}: it cannot be "
               "learned; its output will be untrained")
        warnings.warn(msg, UserWarning, stacklevel=2)
        _log.warning(msg)

    sets = {}
    for name in ("train", "valid", "test"):
        status = {c: {k: train_st[c][k] for k in classes} for c in split[name]}
        truth_status = {c: {k: truth_st[c][k] for k in classes} for c in split[name]}
        on_truth = name == "test" or (name == "valid" and valid_reference == "truth")
        sets[name] = _slice_set([volumes[c] for c in split[name]], status, truth_status,
                                truth_status if on_truth else status, classes, score_truth=on_truth)
    n_all_lost = sum(all(s in ("unknown", "present") for s in train_status[c].values()) for c in split["train"])
    contract = organ_contract(root, classes=classes, hu_window=hu_window,
                              slice_shape=next(iter(shapes)) if shapes else None)
    info = {
        "root": str(root), "classes": classes, "fold": fold, "n_folds": n_folds, "seed": seed,
        "volumes": {k: len(v) for k, v in split.items()}, "slices": {k: len(s) for k, s in sets.items()},
        "n_hidden_pairs": len(hidden), "full_labels": full_labels, "valid_reference": valid_reference,
        "n_train_volumes_all_lost": n_all_lost,
        "unlearnable_classes": unlearnable, "n_label_notes": len(notes),
        "status_counts": {k: {w: sum(train_status[c][k] == w for c in split["train"])
                              for w in ("mask", "present", "absent", "unknown")} for k in classes},
    }
    return OrgansData(sets, tuple(classes), info, contract)


def _codes(st: Mapping[str, str], case_id: str, classes: list[str], depth: int) -> Tensor:
    """One volume's statuses inherited by its ``depth`` slices. Shape: (depth, K) int8."""
    # A single-slice case (2D data stored as NIfTI) is its own slice: its statuses hold as given, so a
    # `present` 2D image stays a GenSeg P image (smile.md §15.2, "a case per slice").
    sl = {c: st[c] for c in classes} if depth == 1 else slice_status({c: st[c] for c in classes})
    return status_codes_table({case_id: sl}, [case_id], classes).expand(depth, len(classes))


def _slice_set(vols: list[OrganVolume], status: Mapping[str, Mapping[str, str]],
               truth_status: Mapping[str, Mapping[str, str]], eval_status: Mapping[str, Mapping[str, str]],
               classes: list[str], *, score_truth: bool) -> OrganSliceSet:
    """Cut volumes into slices; slices inherit statuses (``present`` -> ``unknown``, smile.md §15.2)."""
    k = len(classes)
    if not vols:
        raise WeaksegError("an organs split has no volume; add volumes or lower data.organs.n_valid/n_folds")
    images, labels, st_rows, tr_rows, ev_rows, vol_idx, zs, meta = [], [], [], [], [], [], [], []
    start = 0
    for i, v in enumerate(vols):
        d = v.image.shape[0]
        images.append(v.image)
        labels.append(v.label)
        st_rows.append(_codes(status[v.case_id], v.case_id, classes, d))
        tr_rows.append(_codes(truth_status[v.case_id], v.case_id, classes, d))
        ev_rows.append(_codes(eval_status[v.case_id], v.case_id, classes, d))
        vol_idx.append(torch.full((d,), i))
        zs.append(torch.arange(d))
        meta.append({"case_id": v.case_id, "start": start, "depth": d, "spacing": list(v.spacing)})
        start += d
    img = torch.from_numpy(np.concatenate(images))[:, None]                      # (N, 1, H, W)
    lab = torch.from_numpy(np.concatenate(labels)).long()                         # (N, H, W)
    ids = torch.arange(1, k + 1).view(1, k, 1, 1)
    truth = (lab[:, None] == ids).to(torch.uint8)                                 # (N, K, H, W)
    status_t = torch.cat(st_rows)
    visible = truth * (status_t == MASK)[:, :, None, None]                        # leak guard
    case_ids = [f"{m['case_id']}_z{z:03d}" for m in meta for z in range(m["depth"])]
    return OrganSliceSet(img, status_t, visible, (status_t == MASK).any(1), class_names=classes, case_ids=case_ids,
                         truth=truth, truth_status=torch.cat(tr_rows), eval_status=torch.cat(ev_rows),
                         volume=torch.cat(vol_idx), z=torch.cat(zs),
                         volumes=meta, score_truth=score_truth)


__all__ = [
    "OrganSliceSet", "OrganVolume", "OrgansData", "hidden_pairs",
    "load_organs", "organ_contract", "read_organ_volume", "window_hu",
]
