"""Per-case volume scoring in nnU-Net's ``summary.json`` schema, extended (``ecosystem.md`` §5.2, §7.2).

nnU-Net's keys keep their names and meaning (``metric_per_case``, ``mean``, ``foreground_mean``, ``Dice``,
``IoU``, ``TP``, ``FP``, ``FN``, ``TN``, ``n_ref``, ``n_pred``; label keys are the integer values as
strings, a region is ``str(tuple)`` as in nnU-Net). Ours: ``HD95`` (and ``ASSD``) in mm, the case-class
``status`` and ``outcome``, and a ``weakseg`` block with the version, the empty-case policy, per-class
counts and image-level scores on healthy cases.

Empty cases follow ``EmptyCasePolicy``: a false alarm on a healthy case scores Dice 0 and enters the
mean, so it lowers the score instead of vanishing in a NaN; both-empty cases are excluded and counted.
Classes whose status is ``unknown`` (not annotated) or ``present`` (no mask) are not scored. A class with
status ``absent`` is scored against an empty reference over the whole image (the status is authoritative,
even where the file holds nnU-Net's ``ignore`` value).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from weakseg import __version__
from weakseg.data.status import STATUSES
from weakseg.errors import WeaksegError
from weakseg.metrics.dice import dice_from_counts, iou_from_counts
from weakseg.metrics.distance import assd, hd95, volume_diagonal_mm
from weakseg.metrics.jsonio import atomic_write_json, atomic_write_text
from weakseg.metrics.policy import EmptyCasePolicy

COUNT_KEYS = ("TP", "FP", "FN", "TN", "n_ref", "n_pred")


@dataclass(frozen=True)
class CaseToScore:
    """One case: integer label maps on the same grid, their spacing (mm, array axis order), optional
    per-class statuses (class name -> status word; missing classes are ``mask``) and file names."""

    case_id: str
    pred: np.ndarray
    ref: np.ndarray
    spacing: Sequence[float]
    statuses: Mapping[str, str] | None = None
    prediction_file: str | None = None
    reference_file: str | None = None


@dataclass(frozen=True)
class _Class:
    name: str
    key: str
    values: tuple[int, ...]


def _parse_labels(labels: Mapping[str, Any]) -> tuple[list[_Class], int | None]:
    """Foreground classes (background = value 0 is skipped) and the nnU-Net ``ignore`` value, if any."""
    classes: list[_Class] = []
    ignore = None
    for name, value in labels.items():
        if name == "ignore":
            ignore = int(value)
            continue
        if isinstance(value, (list, tuple)):
            vals = tuple(int(v) for v in value)
            if not vals or 0 in vals:
                raise WeaksegError(f"labels[{name!r}] = {list(value)}: a region must list foreground values (not 0)")
            classes.append(_Class(str(name), str(vals) if len(vals) > 1 else str(vals[0]), vals))
        else:
            if int(value) == 0:
                continue  # background is not scored (nnU-Net scores foreground labels only)
            classes.append(_Class(str(name), str(int(value)), (int(value),)))
    if not classes:
        raise WeaksegError(f"labels {dict(labels)} declare no foreground class; add e.g. {{'tumour': 1}}")
    return classes, ignore


def _as_case(case: CaseToScore | Sequence[Any]) -> CaseToScore:
    if isinstance(case, CaseToScore):
        return case
    if not 4 <= len(case) <= 5:
        raise WeaksegError("each case must be (case_id, pred, ref, spacing[, statuses]) or a CaseToScore")
    return CaseToScore(str(case[0]), case[1], case[2], case[3], case[4] if len(case) == 5 else None)


def _nanmean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(finite)) if finite else None


def _checked_case(raw: CaseToScore | Sequence[Any], names: set[str]) -> tuple[CaseToScore, list[float]]:
    """The case with its shapes, spacing and statuses checked; the spacing as floats."""
    case = _as_case(raw)
    pred, ref = np.asarray(case.pred), np.asarray(case.ref)
    if pred.shape != ref.shape:
        raise WeaksegError(f"case {case.case_id}: prediction shape {pred.shape} differs from reference "
                           f"shape {ref.shape}; predictions must be on the reference grid")
    if pred.ndim not in (2, 3):
        raise WeaksegError(f"case {case.case_id}: label maps must be 2D or 3D, got shape {pred.shape}")
    spacing = [float(s) for s in case.spacing]
    if len(spacing) != pred.ndim:
        raise WeaksegError(f"case {case.case_id}: spacing {spacing} needs one value per axis of {pred.shape}")
    for name, st in (case.statuses or {}).items():
        if name not in names:
            raise WeaksegError(f"case {case.case_id}: status given for unknown class {name!r}; "
                               f"classes: {sorted(names)}")
        if st not in STATUSES:
            raise WeaksegError(f"case {case.case_id}: class {name!r} has unknown status {st!r}; "
                               f"use one of {', '.join(STATUSES)}")
    return case, spacing


def _outcome(n_ref: int, n_pred: int) -> str:
    return ("scored" if n_pred else "missed") if n_ref else ("false_alarm" if n_pred else "both_empty")


def _score_class(case_id: str, c: _Class, p: np.ndarray, r: np.ndarray, valid_c: np.ndarray, st: str,
                 spacing: list[float], policy: EmptyCasePolicy, compute_assd: bool) -> dict[str, Any]:
    """One class's metric entry: counts from the boolean maps ``p`` and ``r``, then Dice, IoU, HD95 (ASSD)."""
    n_pred = int(np.count_nonzero(p))
    if st == "absent" and r.any():
        raise WeaksegError(f"case {case_id}: class {c.name!r} has status 'absent' but its reference "
                           f"holds {int(r.sum())} voxels of it; fix the status or the label map")
    tp = int(np.count_nonzero(p & r))
    fp = n_pred - tp
    n_ref = int(np.count_nonzero(r))
    fn = n_ref - tp
    tn = int(np.count_nonzero(valid_c)) - tp - fp - fn
    t = [torch.tensor([[v]]) for v in (tp, fp, fn)]  # (1, 1) each
    dice = float(dice_from_counts(*t, both_empty=policy.dice_both_empty)[0, 0])
    iou = float(iou_from_counts(*t, both_empty=policy.dice_both_empty)[0, 0])
    pt, rt = torch.from_numpy(p)[None, None], torch.from_numpy(r)[None, None]  # (1, 1, *S)
    hd = float(hd95(pt, rt, spacing=spacing, policy=policy)[0, 0])
    entry: dict[str, Any] = {"Dice": dice, "IoU": iou, "TP": tp, "FP": fp, "FN": fn, "TN": tn,
                             "n_ref": n_ref, "n_pred": n_pred, "HD95": hd}
    if compute_assd:
        entry["ASSD"] = float(assd(pt, rt, spacing=spacing, policy=policy)[0, 0])
    entry["status"] = st
    entry["outcome"] = _outcome(n_ref, n_pred)
    return entry


def _not_scored(st: str, n_pred: int, compute_assd: bool) -> dict[str, Any]:
    """The entry of a class whose reference is unknown (status ``unknown`` or ``present``)."""
    return {"Dice": None, "IoU": None, **dict.fromkeys(COUNT_KEYS), "n_pred": n_pred,
            "HD95": None, **({"ASSD": None} if compute_assd else {}), "status": st, "outcome": "not_scored"}


_COUNT_NAMES = ("cases", "scored", "hd95_scored", "ref_empty", "missed", "false_alarm", "both_empty", "not_scored")


def _count(k: dict[str, int], entry: dict[str, Any]) -> None:
    """Add one case's entry of a class to that class's counts."""
    k["cases"] += 1
    outcome = entry["outcome"]
    if outcome == "not_scored":
        k["not_scored"] += 1
        return
    k["scored"] += int(not np.isnan(entry["Dice"]))
    k["hd95_scored"] += int(not np.isnan(entry["HD95"]))
    k["ref_empty"] += int(entry["n_ref"] == 0)
    k["missed"] += int(outcome == "missed")
    k["false_alarm"] += int(outcome == "false_alarm")
    k["both_empty"] += int(outcome == "both_empty")


def _score_case(case: CaseToScore, spacing: list[float], classes: list[_Class], ignore: int | None,
                policy: EmptyCasePolicy, compute_assd: bool) -> tuple[dict[str, Any], float | None]:
    """The case's ``metric_per_case`` row and, for a known-empty (healthy) case, its predicted foreground
    fraction (else None)."""
    pred, ref = np.asarray(case.pred), np.asarray(case.ref)
    statuses = dict(case.statuses or {})
    valid = np.ones(ref.shape, dtype=bool) if ignore is None else ref != ignore
    metrics: dict[str, dict[str, Any]] = {}
    known_empty = True  # every class annotated (mask/absent) and empty in the reference
    any_fg = np.zeros(ref.shape, dtype=bool)
    any_valid = np.zeros(ref.shape, dtype=bool)
    for c in classes:
        st = statuses.get(c.name, "mask")
        # 'absent' says every voxel is negative for the class: the status, not the file, is authoritative,
        # so the file's ignore voxels (nnU-Net fills unannotated maps with them) do not apply.
        valid_c = np.ones(ref.shape, dtype=bool) if st == "absent" else valid
        p = np.isin(pred, c.values) & valid_c
        any_fg |= p
        any_valid |= valid_c
        if st in ("unknown", "present"):
            known_empty = False
            metrics[c.key] = _not_scored(st, int(np.count_nonzero(p)), compute_assd)
            continue
        metrics[c.key] = _score_class(case.case_id, c, p, np.isin(ref, c.values) & valid_c, valid_c, st,
                                      spacing, policy, compute_assd)
        known_empty &= metrics[c.key]["n_ref"] == 0
    row = {"case_id": case.case_id, "reference_file": case.reference_file, "prediction_file": case.prediction_file,
           "shape": list(ref.shape), "spacing": spacing, "diagonal_mm": volume_diagonal_mm(ref.shape, spacing),
           "metrics": metrics}
    healthy_area = np.count_nonzero(any_fg) / max(int(np.count_nonzero(any_valid)), 1) if known_empty else None
    return row, healthy_area


def _means(per_case: list[dict[str, Any]], classes: list[_Class],
           metric_keys: list[str]) -> tuple[dict[str, dict[str, float | None]], dict[str, float | None]]:
    """Per-class means over the scored cases, and their mean over the classes (nnU-Net's foreground mean)."""
    mean: dict[str, dict[str, float | None]] = {}
    for c in classes:
        rows = [pc["metrics"][c.key] for pc in per_case if pc["metrics"][c.key]["outcome"] != "not_scored"]
        mean[c.key] = {m: _nanmean([r[m] for r in rows]) for m in metric_keys}
    # nnU-Net averages the per-class means; a class with no scored case (mean None) is left out here.
    foreground_mean = {m: _nanmean([mean[c.key][m] for c in classes if mean[c.key][m] is not None])
                       for m in metric_keys}
    return mean, foreground_mean


def score_cases(
    cases: Iterable[CaseToScore | Sequence[Any]],
    *,
    labels: Mapping[str, Any],
    policy: EmptyCasePolicy | None = None,
    compute_assd: bool = False,
) -> dict[str, Any]:
    """Score label maps case by case; returns the extended ``summary.json`` dict (NaN where excluded;
    ``write_summary`` turns NaN into null).

    Args:
        cases: ``CaseToScore`` or tuples ``(case_id, pred, ref, spacing[, statuses])``; pred and ref are
            integer label maps of one shape (2D or 3D), spacing in mm per array axis.
        labels: nnU-Net ``labels``: name -> int (or a tuple of ints for a region); ``background`` (0) is
            skipped and ``ignore`` (nnU-Net's convention) marks reference voxels left out of every count.
        policy: empty-case policy (default: false alarms and misses score Dice 0 and the volume diagonal
            for HD95; both-empty cases excluded and counted).
        compute_assd: also report ``ASSD`` (MONAI, symmetric) in mm.
    """
    policy = policy or EmptyCasePolicy()
    classes, ignore = _parse_labels(labels)
    names = {c.name for c in classes}
    per_case: list[dict[str, Any]] = []
    counts = {c.key: dict.fromkeys(_COUNT_NAMES, 0) for c in classes}
    healthy_area: list[float] = []     # predicted foreground fraction of each known-empty case
    for raw in cases:
        case, spacing = _checked_case(raw, names)
        row, area = _score_case(case, spacing, classes, ignore, policy, compute_assd)
        for c in classes:
            _count(counts[c.key], row["metrics"][c.key])
        if area is not None:
            healthy_area.append(area)
        per_case.append(row)
    metric_keys = ["Dice", "IoU", "HD95"] + (["ASSD"] if compute_assd else []) + list(COUNT_KEYS)
    mean, foreground_mean = _means(per_case, classes, metric_keys)
    return {
        "metric_per_case": per_case,
        "mean": mean,
        "foreground_mean": foreground_mean,
        "weakseg": {
            "version": __version__,
            "policy": policy.to_dict(),
            "labels": {c.key: c.name for c in classes},
            "counts": counts,
            "image_level": {
                "n_healthy": len(healthy_area),
                "healthy_fp_rate": float(np.mean([a > 0 for a in healthy_area])) if healthy_area else None,
                "healthy_fp_area": float(np.mean(healthy_area)) if healthy_area else None,
            },
        },
    }


def summary_csv(summary: Mapping[str, Any]) -> str:
    """One CSV row per (case, class) of a ``score_cases`` summary; empty cells for null/NaN."""
    names = summary.get("weakseg", {}).get("labels", {})
    metric_cols: list[str] = []
    for pc in summary["metric_per_case"]:
        for entry in pc["metrics"].values():
            metric_cols += [k for k in entry if k not in metric_cols and k not in ("status", "outcome")]
    cols = ["case_id", "label", "class", "status", "outcome", *metric_cols, "reference_file", "prediction_file"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)

    def cell(v: Any) -> Any:
        return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else v

    for pc in summary["metric_per_case"]:
        for key, entry in pc["metrics"].items():
            row = {"case_id": pc["case_id"], "label": key, "class": names.get(key, ""),
                   "reference_file": pc.get("reference_file"), "prediction_file": pc.get("prediction_file"), **entry}
            w.writerow([cell(row.get(c)) for c in cols])
    return buf.getvalue()


def write_summary(
    summary: Mapping[str, Any],
    path_json: str | os.PathLike[str],
    path_csv: str | os.PathLike[str] | None = None,
) -> None:
    """Write ``summary.json`` (null for NaN/inf, atomic) and, if asked, the per-case CSV (atomic)."""
    atomic_write_json(path_json, summary)
    if path_csv is not None:
        atomic_write_text(path_csv, summary_csv(summary))
