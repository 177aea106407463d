from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from weakseg import __version__
from weakseg.errors import WeaksegError
from weakseg.metrics.policy import EmptyCasePolicy
from weakseg.metrics.summary import CaseToScore, score_cases, summary_csv, write_summary

SPACING = (1.0, 1.0, 2.5)
DIAG = math.sqrt(16**2 + 16**2 + 40**2)  # 16^3 voxels at 1 x 1 x 2.5 mm
LABELS = {"background": 0, "tumour": 1}


def _vol() -> np.ndarray:
    return np.zeros((16, 16, 16), dtype=np.uint8)


def _cube(lo: int = 4, hi: int = 8, value: int = 1) -> np.ndarray:
    v = _vol()
    v[lo:hi, lo:hi, lo:hi] = value
    return v


def _no_constants(name: str) -> float:
    raise AssertionError(f"invalid JSON constant {name}")


def test_structure_and_hand_values() -> None:
    pred = _cube()
    pred[8, 4:8, 4:8] = 1  # 16 extra voxels: TP 64, FP 16, FN 0
    s = score_cases([("a", pred, _cube(), SPACING)], labels=LABELS)
    assert set(s) == {"metric_per_case", "mean", "foreground_mean", "weakseg"}
    (case,) = s["metric_per_case"]
    assert case["case_id"] == "a" and case["diagonal_mm"] == pytest.approx(DIAG)
    m = case["metrics"]["1"]
    assert (m["TP"], m["FP"], m["FN"], m["TN"], m["n_ref"], m["n_pred"]) == (64, 16, 0, 4096 - 80, 64, 80)
    assert m["Dice"] == pytest.approx(128 / 144) and m["IoU"] == pytest.approx(64 / 80)
    assert m["HD95"] == pytest.approx(1.0)  # the extra slab is one 1 mm voxel away along x
    assert m["status"] == "mask" and m["outcome"] == "scored"
    assert s["mean"]["1"]["Dice"] == pytest.approx(128 / 144)
    assert s["foreground_mean"]["Dice"] == pytest.approx(128 / 144)
    w = s["weakseg"]
    assert w["version"] == __version__ and w["policy"] == EmptyCasePolicy().to_dict()
    assert w["labels"] == {"1": "tumour"}
    assert w["counts"]["1"] == {"cases": 1, "scored": 1, "hd95_scored": 1, "ref_empty": 0, "missed": 0,
                                "false_alarm": 0, "both_empty": 0, "not_scored": 0}


def test_healthy_false_alarm_lowers_the_mean_and_both_empty_is_excluded() -> None:
    alarm = _vol()
    alarm[0, 0, 0:4] = 1  # 4 voxels on a healthy case
    cases = [
        ("sick", _cube(), _cube(), SPACING),          # Dice 1, HD95 0
        ("healthy_alarm", alarm, _vol(), SPACING),    # false alarm: Dice 0, HD95 = diagonal
        ("healthy_clean", _vol(), _vol(), SPACING),   # both empty: excluded and counted
        ("missed", _vol(), _cube(), SPACING),         # missed: Dice 0, HD95 = diagonal
    ]
    s = score_cases(cases, labels=LABELS)
    per = {c["case_id"]: c["metrics"]["1"] for c in s["metric_per_case"]}
    assert per["healthy_alarm"]["Dice"] == 0.0 and per["healthy_alarm"]["HD95"] == pytest.approx(DIAG)
    assert per["healthy_alarm"]["outcome"] == "false_alarm"
    assert math.isnan(per["healthy_clean"]["Dice"]) and math.isnan(per["healthy_clean"]["HD95"])
    assert per["missed"]["Dice"] == 0.0 and per["missed"]["HD95"] == pytest.approx(DIAG)
    assert s["mean"]["1"]["Dice"] == pytest.approx(1 / 3)  # (1 + 0 + 0) / 3: the false alarm counts
    assert s["mean"]["1"]["HD95"] == pytest.approx(2 * DIAG / 3)
    c = s["weakseg"]["counts"]["1"]
    got = (c["cases"], c["scored"], c["ref_empty"], c["missed"], c["false_alarm"], c["both_empty"])
    assert got == (4, 3, 2, 1, 1, 1)
    il = s["weakseg"]["image_level"]
    assert il["n_healthy"] == 2 and il["healthy_fp_rate"] == 0.5
    assert il["healthy_fp_area"] == pytest.approx((4 / 4096 + 0) / 2)

    one = score_cases(cases, labels=LABELS, policy=EmptyCasePolicy(dice_both_empty="one", hd_both_empty="zero"))
    assert one["mean"]["1"]["Dice"] == pytest.approx(2 / 4)
    assert one["weakseg"]["counts"]["1"]["scored"] == 4


def test_unknown_and_present_are_not_scored() -> None:
    garbage = _cube(0, 12)
    cases = [
        ("a", _cube(), _cube(), SPACING, {"tumour": "mask"}),
        ("b", garbage, _vol(), SPACING, {"tumour": "unknown"}),
        ("c", garbage, _cube(), SPACING, {"tumour": "present"}),
    ]
    s = score_cases(cases, labels=LABELS)
    assert s["mean"]["1"]["Dice"] == 1.0
    per = {c["case_id"]: c["metrics"]["1"] for c in s["metric_per_case"]}
    assert per["b"]["Dice"] is None and per["b"]["status"] == "unknown" and per["b"]["outcome"] == "not_scored"
    assert per["b"]["n_pred"] == 12**3 and per["b"]["TP"] is None
    assert s["weakseg"]["counts"]["1"]["not_scored"] == 2 and s["weakseg"]["counts"]["1"]["scored"] == 1
    assert s["weakseg"]["image_level"]["n_healthy"] == 0  # unknown is not known healthy


def test_absent_status_is_scored_against_an_empty_reference_and_checked() -> None:
    ignore_filled = np.full((16, 16, 16), 2, dtype=np.uint8)  # nnU-Net's ignore value fills unannotated maps
    s = score_cases([("h", _cube(), ignore_filled, SPACING, {"tumour": "absent"})],
                    labels={**LABELS, "ignore": 2})
    m = s["metric_per_case"][0]["metrics"]["1"]
    # 'absent' makes every voxel a negative, whatever the file holds: the cube is a false alarm
    assert (m["TP"], m["FP"], m["FN"], m["TN"], m["n_pred"]) == (0, 64, 0, 4096 - 64, 64)
    assert m["Dice"] == 0.0 and m["outcome"] == "false_alarm" and m["HD95"] == pytest.approx(DIAG)
    il = s["weakseg"]["image_level"]
    assert il["n_healthy"] == 1 and il["healthy_fp_rate"] == 1.0 and il["healthy_fp_area"] == pytest.approx(64 / 4096)
    with pytest.raises(WeaksegError, match="status 'absent'"):
        score_cases([("x", _vol(), _cube(), SPACING, {"tumour": "absent"})], labels=LABELS)


def test_ignore_label_excludes_voxels() -> None:
    ref = _cube()
    ref[0:2] = 2  # 512 ignored voxels
    pred = _cube()
    pred[0, 0, 0] = 1  # a false positive inside the ignored region: not counted
    s = score_cases([("a", pred, ref, SPACING)], labels={"background": 0, "tumour": 1, "ignore": 2})
    m = s["metric_per_case"][0]["metrics"]["1"]
    assert (m["TP"], m["FP"], m["FN"], m["TN"]) == (64, 0, 0, 4096 - 512 - 64)
    assert list(s["mean"]) == ["1"]


def test_regions_and_multiple_classes() -> None:
    ref = _cube(4, 8, 1)
    ref[4:6, 4:8, 4:8] = 2
    pred = _cube(4, 8, 2)  # everything predicted as 2
    s = score_cases([CaseToScore("a", pred, ref, SPACING)],
                    labels={"background": 0, "edema": 1, "core": 2, "whole": (1, 2)})
    m = s["metric_per_case"][0]["metrics"]
    assert m["1"]["Dice"] == 0.0 and m["(1, 2)"]["Dice"] == 1.0
    assert m["2"]["Dice"] == pytest.approx(2 * 32 / (32 + 64))
    assert s["foreground_mean"]["Dice"] == pytest.approx((0 + 2 / 3 + 1) / 3)


def test_write_summary_has_nulls_not_nan_and_a_csv(tmp_path: Path) -> None:
    cases = [("sick", _cube(), _cube(), SPACING), ("clean", _vol(), _vol(), SPACING),
             ("b", _cube(), _vol(), SPACING, {"tumour": "unknown"})]
    s = score_cases(cases, labels=LABELS, compute_assd=True)
    write_summary(s, tmp_path / "summary.json", tmp_path / "summary.csv")
    data = json.loads((tmp_path / "summary.json").read_text(), parse_constant=_no_constants)
    clean = data["metric_per_case"][1]["metrics"]["1"]
    assert clean["Dice"] is None and clean["HD95"] is None and clean["ASSD"] is None and clean["TP"] == 0
    assert data["mean"]["1"]["Dice"] == 1.0 and data["mean"]["1"]["ASSD"] == 0.0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert [r["case_id"] for r in rows] == ["sick", "clean", "b"]
    assert rows[0]["Dice"] == "1.0" and rows[1]["Dice"] == "" and rows[2]["status"] == "unknown"
    assert rows[0]["class"] == "tumour"
    assert summary_csv(s) == (tmp_path / "summary.csv").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv", "summary.json"]


def test_a_class_without_scored_cases_has_null_mean() -> None:
    s = score_cases([("clean", _vol(), _vol(), SPACING)], labels=LABELS)
    assert s["mean"]["1"]["Dice"] is None and s["foreground_mean"]["Dice"] is None
    assert s["weakseg"]["counts"]["1"]["scored"] == 0


def test_2d_cases() -> None:
    ref = np.zeros((32, 32), dtype=np.uint8)
    ref[4:8, 4:8] = 1
    pred = np.zeros_like(ref)
    s = score_cases([("slice", pred, ref, (0.5, 2.0))], labels=LABELS)
    assert s["metric_per_case"][0]["metrics"]["1"]["HD95"] == pytest.approx(math.hypot(16, 64))


@pytest.mark.parametrize(("case", "labels", "match"), [
    (("a", _vol(), np.zeros((16, 16, 8)), SPACING), LABELS, "shape"),
    (("a", _vol(), _vol(), (1.0, 1.0)), LABELS, "spacing"),
    (("a", _vol(), _vol(), SPACING, {"liver": "mask"}), LABELS, "unknown class 'liver'"),
    (("a", _vol(), _vol(), SPACING, {"tumour": "maybe"}), LABELS, "unknown status 'maybe'"),
    (("a", _vol(), _vol(), SPACING), {"background": 0}, "no foreground class"),
])
def test_bad_cases(case: tuple, labels: dict, match: str) -> None:
    with pytest.raises(WeaksegError, match=match):
        score_cases([case], labels=labels)
