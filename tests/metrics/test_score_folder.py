from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from weakseg.errors import WeaksegError
from weakseg.metrics.score_folder import score_folders

# oblique, anisotropic affine: spacing 0.8 x 0.8 x 2.5 mm, 10 degrees about z
_c, _s = math.cos(math.radians(10)), math.sin(math.radians(10))
AFFINE = np.array([[0.8 * _c, -0.8 * _s, 0, 10], [0.8 * _s, 0.8 * _c, 0, -5], [0, 0, 2.5, 3], [0, 0, 0, 1]])


def _write(path: Path, arr: np.ndarray, affine: np.ndarray = AFFINE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr.astype(np.uint8), affine), str(path))


def _cube(z0: int = 4) -> np.ndarray:
    v = np.zeros((16, 16, 12), dtype=np.uint8)
    v[4:8, 4:8, z0 : z0 + 4] = 1
    return v


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    gt, pred = tmp_path / "labelsTr", tmp_path / "pred"
    _write(gt / "c1.nii.gz", _cube())
    _write(pred / "c1.nii.gz", _cube(z0=6))  # shifted 2 slices of 2.5 mm
    _write(gt / "c2.nii.gz", np.zeros((16, 16, 12)))
    _write(pred / "c2.nii.gz", _cube())  # false alarm on a healthy case
    return pred, gt


def test_scores_with_spacing_from_the_affine(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    _write(pred / "extra.nii.gz", _cube())
    s = score_folders(pred, gt, labels={"background": 0, "tumour": 1})
    per = {c["case_id"]: c for c in s["metric_per_case"]}
    assert per["c1"]["spacing"] == pytest.approx([0.8, 0.8, 2.5])
    assert per["c1"]["metrics"]["1"]["HD95"] == pytest.approx(5.0)
    assert per["c1"]["metrics"]["1"]["Dice"] == pytest.approx(0.5)
    assert per["c2"]["metrics"]["1"]["Dice"] == 0.0
    assert per["c2"]["metrics"]["1"]["HD95"] == pytest.approx(math.sqrt(12.8**2 + 12.8**2 + 30**2))
    assert per["c1"]["reference_file"].endswith("labelsTr/c1.nii.gz")
    assert s["mean"]["1"]["Dice"] == pytest.approx(0.25)
    assert s["weakseg"]["unmatched_predictions"] == ["extra.nii.gz"]


def test_labels_from_dataset_json_or_inferred(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    assert score_folders(pred, gt)["weakseg"]["labels"] == {"1": "1"}
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "tumour": 1}}))
    assert score_folders(pred, gt)["weakseg"]["labels"] == {"1": "tumour"}


def test_statuses_are_passed_through(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    s = score_folders(pred, gt, labels={"tumour": 1}, statuses={"c2": {"tumour": "unknown"}})
    assert s["mean"]["1"]["Dice"] == pytest.approx(0.5)


def test_missing_prediction(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    (pred / "c2.nii.gz").unlink()
    with pytest.raises(WeaksegError, match="no prediction.*c2.nii.gz"):
        score_folders(pred, gt, labels={"tumour": 1})


def test_empty_or_absent_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(WeaksegError, match="no \\*.nii.gz files"):
        score_folders(tmp_path / "a", tmp_path / "b")
    with pytest.raises(WeaksegError, match="does not exist"):
        score_folders(tmp_path / "nope", tmp_path / "b")


def test_shape_mismatch(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    _write(pred / "c2.nii.gz", np.zeros((16, 16, 10)))
    with pytest.raises(WeaksegError, match="c2.nii.gz: shape"):
        score_folders(pred, gt, labels={"tumour": 1})


def test_affine_mismatch(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    _write(pred / "c2.nii.gz", _cube(), affine=np.diag([0.8, 0.8, 2.5, 1.0]))
    with pytest.raises(WeaksegError, match="c2.nii.gz: affine"):
        score_folders(pred, gt, labels={"tumour": 1})


def test_undeclared_label_value(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    _write(pred / "c1.nii.gz", _cube() * 3)
    with pytest.raises(WeaksegError, match=r"c1.nii.gz: label values \[3\]"):
        score_folders(pred, gt, labels={"tumour": 1})


def test_every_file_with_undeclared_values_is_listed(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    _write(pred / "c1.nii.gz", _cube() * 3)
    _write(gt / "c2.nii.gz", _cube() * 5)
    with pytest.raises(WeaksegError) as err:
        score_folders(pred, gt, labels={"tumour": 1})
    msg = str(err.value)
    assert msg.startswith("2 label map(s)") and "pred/c1.nii.gz: label values [3]" in msg
    assert "labelsTr/c2.nii.gz: label values [5]" in msg


def test_truncated_file(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    raw = gzip.compress(b"\0" * 100)  # a gzip stream that is not a NIfTI header, then cut short
    (pred / "c1.nii.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(WeaksegError, match="c1.nii.gz: cannot read as NIfTI"):
        score_folders(pred, gt, labels={"tumour": 1})


def test_float_maps_with_non_integer_values(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    nib.save(nib.Nifti1Image(_cube().astype(np.float32) * 0.5, AFFINE), str(pred / "c1.nii.gz"))
    with pytest.raises(WeaksegError, match="non-integer"):
        score_folders(pred, gt, labels={"tumour": 1})


def test_every_geometry_problem_is_reported_at_once(tmp_path) -> None:
    import nibabel as nib
    import numpy as np
    import pytest

    from weakseg.errors import WeaksegError
    from weakseg.metrics.score_folder import score_folders

    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    ref = np.zeros((8, 8, 4), dtype=np.uint8)
    for name in ("a.nii.gz", "b.nii.gz", "c.nii.gz"):
        nib.save(nib.Nifti1Image(ref, np.eye(4)), str(gt / name))
    nib.save(nib.Nifti1Image(ref, np.eye(4)), str(pred / "a.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 5), dtype=np.uint8), np.eye(4)), str(pred / "b.nii.gz"))
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    nib.save(nib.Nifti1Image(ref, shifted), str(pred / "c.nii.gz"))
    with pytest.raises(WeaksegError) as err:
        score_folders(pred, gt, labels={"background": 0, "tumour": 1})
    msg = str(err.value)
    assert "2 problems" in msg and "b.nii.gz: shape" in msg and "c.nii.gz: affine" in msg
