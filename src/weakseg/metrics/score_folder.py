"""Score a folder of predicted NIfTI label maps against a folder of references (nnU-Net style).

Files are matched by name (``case.nii.gz`` in both folders). Every reference needs a prediction; a
prediction without a reference is listed in the summary (``weakseg.unmatched_predictions``) and not
scored. Label maps are read with ``np.asanyarray(img.dataobj)`` (no float scaling) and the spacing comes
from the reference affine (``nibabel.affines.voxel_sizes``). Shape or affine mismatches, unreadable files
and label values outside the declared set are ``WeaksegError``s naming the file. Cases are read one at a
time, so a folder of full-size volumes never sits in memory at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes

from weakseg.errors import WeaksegError
from weakseg.metrics.policy import EmptyCasePolicy
from weakseg.metrics.summary import CaseToScore, score_cases

AFFINE_ATOL = 1e-4  # mm; header round trips (float32 sform) stay far below this


def _load_labelmap(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        img = nib.load(str(path))
        arr = np.asanyarray(img.dataobj)
    except Exception as exc:  # nibabel raises many types for truncated or foreign files
        raise WeaksegError(f"{path}: cannot read as NIfTI ({type(exc).__name__}: {exc}); re-export the file") from exc
    arr = np.asarray(arr)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]  # (X, Y, Z, 1) -> (X, Y, Z)
    if arr.ndim not in (2, 3):
        raise WeaksegError(f"{path}: a label map must be 2D or 3D, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise WeaksegError(f"{path}: label map holds non-integer or NaN/Inf values; save integer labels (uint8)")
        arr = arr.astype(np.int64)
    return arr, np.asarray(img.affine, dtype=np.float64)


def _labels_from_dataset_json(gt_dir: Path) -> dict[str, Any] | None:
    for candidate in (gt_dir / "dataset.json", gt_dir.parent / "dataset.json"):
        if candidate.is_file():
            try:
                labels = json.loads(candidate.read_text()).get("labels")
            except (json.JSONDecodeError, AttributeError) as exc:
                raise WeaksegError(f"{candidate}: not a valid dataset.json ({exc}); fix it or pass labels") from exc
            if isinstance(labels, dict) and labels:
                return labels
    return None


def _case_id(name: str, file_ending: str) -> str:
    return name[: -len(file_ending)]


def _precheck_headers(pred_dir: Path, gt_dir: Path, names: list[str]) -> None:
    """Read every pair's header (no voxels) and report ALL geometry problems in one message, before scoring."""
    import nibabel as nib

    problems = []
    for name in names:
        heads = []
        for path in (gt_dir / name, pred_dir / name):
            try:
                img = nib.load(str(path))
                heads.append((tuple(img.shape), np.asarray(img.affine)))
            except Exception as err:  # nibabel raises several types for damaged headers
                problems.append(f"{path}: cannot read as NIfTI ({type(err).__name__}: {err}); re-export the file")
        if len(heads) == 2:
            (ref_shape, ref_aff), (pred_shape, pred_aff) = heads
            if pred_shape != ref_shape:
                problems.append(f"{pred_dir / name}: shape {pred_shape} differs from the reference's {ref_shape}; "
                                "write predictions on the reference grid")
            elif not np.allclose(pred_aff, ref_aff, atol=AFFINE_ATOL, rtol=0):
                problems.append(f"{pred_dir / name}: affine differs from the reference's ({gt_dir / name}); "
                                "write predictions with the input image's affine")
    if len(problems) == 1:
        raise WeaksegError(problems[0])
    if problems:
        raise WeaksegError(f"{len(problems)} problems found before scoring:\n  " + "\n  ".join(problems))


def _shown(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _matched_names(pred_dir: Path, gt_dir: Path, file_ending: str,
                   case_ids: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(reference file names to score, prediction file names without a reference); every reference to score
    must have a prediction."""
    for d, what in ((pred_dir, "prediction"), (gt_dir, "reference")):
        if not d.is_dir():
            raise WeaksegError(f"{what} folder {d} does not exist; pass the folder holding *{file_ending} label maps")
    refs = sorted(p.name for p in gt_dir.iterdir() if p.name.endswith(file_ending) and not p.name.startswith("."))
    preds = sorted(p.name for p in pred_dir.iterdir() if p.name.endswith(file_ending) and not p.name.startswith("."))
    if case_ids is not None:
        wanted = [f"{c}{file_ending}" for c in case_ids]
        lacking = [n for n in wanted if n not in set(refs)]
        if lacking:
            raise WeaksegError(f"reference folder {gt_dir} lacks {len(lacking)} case(s) to score: {_shown(lacking)}; "
                               "give a reference for every case")
        refs = sorted(wanted)
    if not refs:
        raise WeaksegError(f"reference folder {gt_dir} holds no *{file_ending} files; check the path or file_ending")
    missing = [n for n in refs if n not in set(preds)]
    if missing:
        raise WeaksegError(f"{len(missing)} reference case(s) have no prediction in {pred_dir}: {_shown(missing)}; "
                           "predict every case (files are matched by name)")
    return refs, [n for n in preds if n not in set(refs)]


def _pairs(pred_dir: Path, gt_dir: Path, refs: list[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, prediction, reference, reference affine), one case at a time (volumes are large); a shape or
    affine problem stops at once (the headers were pre-checked)."""
    for name in refs:
        ref, ref_aff = _load_labelmap(gt_dir / name)
        pred, pred_aff = _load_labelmap(pred_dir / name)
        if pred.shape != ref.shape:
            raise WeaksegError(f"{pred_dir / name}: shape {pred.shape} differs from the reference's {ref.shape}; "
                               "write predictions on the reference grid")
        if not np.allclose(pred_aff, ref_aff, atol=AFFINE_ATOL, rtol=0):
            raise WeaksegError(f"{pred_dir / name}: affine differs from the reference's ({gt_dir / name}); "
                               "write predictions with the input image's affine")
        yield name, pred, ref, ref_aff


def _labels_from_values(pred_dir: Path, gt_dir: Path, refs: list[str]) -> dict[str, Any]:
    """Every non-zero value of the references and predictions, named by its value (one extra pass)."""
    values: set[int] = set()
    for _, pred, ref, _ in _pairs(pred_dir, gt_dir, refs):
        values |= {int(v) for v in np.unique(ref)} | {int(v) for v in np.unique(pred)}
    values.discard(0)
    if not values:
        raise WeaksegError(f"no foreground label in {gt_dir} or {pred_dir}; pass labels={{'name': value}}")
    return {"background": 0, **{str(v): v for v in sorted(values)}}


def _declared_values(labels: Mapping[str, Any]) -> set[int]:
    allowed: set[int] = {0}
    for v in labels.values():
        allowed |= {int(x) for x in v} if isinstance(v, (list, tuple)) else {int(v)}
    return allowed


def _cases(pred_dir: Path, gt_dir: Path, refs: list[str], labels: Mapping[str, Any], file_ending: str,
           statuses: Mapping[str, Mapping[str, str]] | None, bad_values: list[str]) -> Iterator[CaseToScore]:
    """The cases to score; every file with undeclared label values is appended to ``bad_values`` and, once
    one is found, nothing more is scored (nothing will be returned)."""
    allowed = _declared_values(labels)
    for name, pred, ref, aff in _pairs(pred_dir, gt_dir, refs):
        for arr, folder in ((ref, gt_dir), (pred, pred_dir)):
            extra = sorted(set(np.unique(arr).tolist()) - allowed)
            if extra:
                bad_values.append(f"{folder / name}: label values {extra[:10]} are not declared in labels "
                                  f"{dict(labels)}")
        if bad_values:                 # nothing is returned once a file is bad: skip the scoring work
            continue
        cid = _case_id(name, file_ending)
        spacing = [float(s) for s in voxel_sizes(aff)[: ref.ndim]]
        yield CaseToScore(cid, pred, ref, spacing, (statuses or {}).get(cid),
                          prediction_file=str(pred_dir / name), reference_file=str(gt_dir / name))


def score_folders(
    pred_dir: str | os.PathLike[str],
    gt_dir: str | os.PathLike[str],
    *,
    labels: Mapping[str, Any] | None = None,
    policy: EmptyCasePolicy | None = None,
    statuses: Mapping[str, Mapping[str, str]] | None = None,
    file_ending: str = ".nii.gz",
    compute_assd: bool = False,
    case_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score every reference in ``gt_dir`` against the same-named prediction in ``pred_dir``.

    Args:
        labels: nnU-Net ``labels`` (name -> int). None: read from ``dataset.json`` in ``gt_dir`` or its
            parent, else every non-zero value found in the references and predictions (named by value).
        statuses: optional case_id -> {class name: status}; missing entries are ``mask``.
        file_ending: the label files' ending, as in nnU-Net's ``dataset.json``.
        case_ids: score only these references (each must exist), e.g. one fold of a folder of full
            references; default every reference in ``gt_dir``.

    Returns the extended ``summary.json`` dict of ``score_cases``. Files with undeclared label values are
    all listed after one pass. Nothing is written here, so no partial output can remain.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    refs, unmatched = _matched_names(pred_dir, gt_dir, file_ending, case_ids)
    _precheck_headers(pred_dir, gt_dir, refs)
    if labels is None:
        labels = _labels_from_dataset_json(gt_dir) or _labels_from_values(pred_dir, gt_dir, refs)
    bad_values: list[str] = []     # every file with undeclared values, reported together after the pass
    summary = score_cases(_cases(pred_dir, gt_dir, refs, labels, file_ending, statuses, bad_values),
                          labels=labels, policy=policy, compute_assd=compute_assd)
    if bad_values:
        raise WeaksegError(f"{len(bad_values)} label map(s) hold undeclared values; fix the maps or the labels:\n  "
                           + "\n  ".join(bad_values))
    summary["weakseg"]["unmatched_predictions"] = unmatched
    return summary
