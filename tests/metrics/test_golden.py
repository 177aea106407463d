"""Golden outputs of ``score_cases`` and ``score_folders`` on small fixed inputs.

The expectations in ``data/golden_*.json`` were computed by the code before it was split into named steps;
the full summaries must stay equal (NaN as the string "nan", paths relative to the test folder).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from weakseg.metrics.policy import EmptyCasePolicy
from weakseg.metrics.score_folder import score_folders
from weakseg.metrics.summary import CaseToScore, score_cases

DATA = Path(__file__).parent / "data"
AFFINE = np.diag([0.8, 0.9, 2.5, 1.0])


def _canonical(value: Any, root: str) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, root) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, str):
        return value.replace(root, "<tmp>")
    return value


def _blob(shape: tuple[int, ...], lo: int, hi: int, value: int = 1) -> np.ndarray:
    a = np.zeros(shape, dtype=np.int64)
    a[tuple(slice(lo, hi) for _ in shape)] = value
    return a


def _cases() -> list[Any]:
    s3 = (10, 10, 6)
    both = _blob(s3, 2, 5) + _blob(s3, 5, 6, 2) * 1
    ref_ignore = both.copy()
    ref_ignore[0, :, :] = 9                                              # nnU-Net's ignore value
    return [
        CaseToScore("hit", _blob(s3, 2, 5) + _blob(s3, 4, 6, 2) * (_blob(s3, 2, 5) == 0), both, (0.8, 0.9, 2.5),
                    prediction_file="p/hit.nii.gz", reference_file="r/hit.nii.gz"),
        ("missed", np.zeros(s3, dtype=np.int64), both, (1.0, 1.0, 1.0)),
        ("false_alarm", _blob(s3, 1, 3), np.zeros(s3, dtype=np.int64), (1.0, 1.0, 2.0)),
        ("healthy", np.zeros(s3, dtype=np.int64), np.zeros(s3, dtype=np.int64), (1.0, 1.0, 2.0)),
        ("statuses", _blob(s3, 2, 4, 2), ref_ignore * (ref_ignore != 2), (1.0, 1.0, 1.0),
         {"liver": "mask", "spleen": "absent"}),
        ("unknown", _blob(s3, 3, 6), both, (1.0, 1.0, 1.0), {"liver": "unknown", "spleen": "present"}),
    ]


def test_score_cases_golden() -> None:
    labels = {"background": 0, "liver": 1, "spleen": 2, "both": [1, 2], "ignore": 9}
    out = {
        "default": score_cases(_cases(), labels=labels, compute_assd=True),
        "policy": score_cases(_cases(), labels=labels,
                              policy=EmptyCasePolicy(dice_both_empty="one", hd_one_empty="nan", hd_both_empty="zero")),
        "2d": score_cases([("a", _blob((8, 8), 1, 4), _blob((8, 8), 2, 5), (0.5, 0.7))], labels={"x": 1}),
    }
    _compare(out, "", DATA / "golden_score_cases.json")


def _write(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr.astype(np.uint8), AFFINE), str(path))


def test_score_folders_golden(tmp_path: Path) -> None:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    for case_id, p, r, *_ in [(*c,) if isinstance(c, tuple) else (c.case_id, c.pred, c.ref) for c in _cases()]:
        if case_id == "statuses":
            r = r * (r != 9)
        _write(gt / f"{case_id}.nii.gz", r)
        _write(pred / f"{case_id}.nii.gz", p)
    _write(pred / "extra.nii.gz", _blob((10, 10, 6), 1, 2))
    out = {
        "inferred": score_folders(pred, gt, statuses={"unknown": {"1": "unknown"}}),
        "subset": score_folders(pred, gt, labels={"background": 0, "liver": 1, "spleen": 2}, compute_assd=True,
                                case_ids=["hit", "healthy"]),
    }
    (gt / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "liver": 1, "spleen": 2}}))
    out["dataset_json"] = score_folders(pred, gt, statuses={"statuses": {"spleen": "absent"}})
    _compare(out, str(tmp_path), DATA / "golden_score_folders.json")


def _compare(out: dict[str, Any], root: str, path: Path) -> None:
    got = _canonical(out, root) if root else _canonical(out, "\0")
    for summary in got.values():
        summary["weakseg"]["version"] = "<version>"
    if os.environ.get("WEAKSEG_WRITE_GOLDEN"):                       # regenerate only on purpose
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text())
