"""Volume validation of BraTS runs: the same numbers as ``weakseg predict`` + counting on the NIfTI files,
healthy volumes' false positives counted, selection on ``volume/dice_pooled`` every N evaluations."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from weakseg.cli.main import main
from weakseg.config import load_config
from weakseg.data.brats.dataset import BratsSliceSet
from tests.brats_toy import TINY
from weakseg.evaluation.brats_volumes import evaluate_brats_volumes
from weakseg.inference.report import evaluate_run
from weakseg.data.brats.synthetic import write_synthetic_brats



@pytest.fixture(scope="module")
def brats(tmp_path_factory) -> Path:
    """Synthetic BraTS (2 healthy subjects), converted with a valid and a test split holding one of each.

    float32 storage: the model then sees exactly the images predict computes from the NIfTI files (with the
    default float16 storage a voxel whose probability is within float16 rounding of the threshold may flip).
    """
    root = tmp_path_factory.mktemp("vol")
    subjects = write_synthetic_brats(root / "src", n_subjects=7, naming="2020", shape=(48, 48, 16), n_tumour_free=2,
                                     orientations={3: "PSL"})
    ids = [s.subject_id for s in subjects]                   # 5 and 6 are healthy
    split = {"train": [ids[0], ids[1], ids[2]], "valid": [ids[4], ids[5]], "test": [ids[3], ids[6]]}
    (root / "split.json").write_text(json.dumps(split))
    assert main(["convert", "brats", str(root / "src"), str(root / "conv"), "--split-file", str(root / "split.json"),
                 "--labelled-fraction", "0.5", "--image-dtype", "float32", "--no-progress"]) == 0
    return root


def _train(brats: Path, run: Path, *sets: str) -> int:
    argv = ["train", "configs/brats/brats_seg_only.yaml", "--out", str(run), "--no-progress",
            "--set", f"data.brats.root={brats / 'conv'}"]
    for s in (*TINY, *sets):
        argv += ["--set", s]
    return main(argv)


@pytest.fixture(scope="module")
def run(brats) -> Path:
    out = brats / "run"
    assert _train(brats, out, "train.steps=20", "train.eval_every=10", "train.checkpoint_every=10") == 0
    return out


def test_volume_scores_equal_predict_on_the_nifti_files(brats, run) -> None:
    """Per test patient, TP/FP/FN of the volume validation equal those of `weakseg predict --references`."""
    report = evaluate_run(run, split="test", write=False)
    cases = {c["case_id"]: c for c in report["metrics"]["volume"]["per_case"]}
    test_ids = json.loads((brats / "split.json").read_text())["test"]
    pred = brats / "pred"
    assert main(["predict", str(run), str(brats / "src"), str(pred), "--references", "--no-progress"]) == 0
    for cid in test_ids:
        p = np.asarray(nib.load(pred / f"{cid}.nii.gz").dataobj) > 0
        r = np.asarray(nib.load(pred / "references" / f"{cid}.nii.gz").dataobj) > 0
        assert (cases[cid]["tp"], cases[cid]["fp"], cases[cid]["fn"]) == \
            (int((p & r).sum()), int((p & ~r).sum()), int((~p & r).sum())), cid
    assert set(cases) == set(test_ids)
    vol = report["metrics"]["volume"]
    assert vol["n_tumour"] == 1 and vol["n_healthy"] == 1
    tp, fp, fn = (sum(c[k] for c in cases.values()) for k in ("tp", "fp", "fn"))
    assert vol["dice_pooled"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert report["metrics"]["dice_soft_global"] is not None        # the slice level is still reported
    train = evaluate_run(run, split="train", write=False)["metrics"]["volume"]
    assert set(train) == {"note"} and "P and A slices only" in train["note"]


def test_healthy_false_positives_are_counted(brats) -> None:
    """A model painting every brain voxel: every healthy brain voxel is a false positive and lowers the
    pooled Dice, where the slice-level Dice of P slices cannot see it."""
    cfg = load_config("brats/brats_seg_only", [f"data.brats.root={brats / 'conv'}"])
    data = BratsSliceSet(brats / "conv", "valid", include="all")
    everything = lambda x: torch.full((x.shape[0], 1, *x.shape[2:]), 10.0)   # noqa: E731
    vol = evaluate_brats_volumes(everything, data, cfg, torch.device("cpu"))
    healthy = [i for i, p in enumerate(data.patients) if data.tumour_area[data.patient == i].sum() == 0]
    assert len(healthy) == 1
    brain = int(data.brain_area[data.patient == healthy[0]].sum())
    assert vol["healthy_fp_voxels"] == brain and vol["n_healthy_false_alarm"] == 1
    tumour_only = [c for c in vol["per_case"] if c["ref_voxels"] > 0][0]
    assert tumour_only["fn"] == 0 and vol["dice_pooled"] < tumour_only["dice"]
    assert vol["dice_mean_with_healthy"] == pytest.approx(tumour_only["dice"] / 2)   # the healthy volume: Dice 0
    subset = evaluate_brats_volumes(everything, data, cfg, torch.device("cpu"), max_patients=1)
    assert subset["n_volumes"] == 1 and subset["of_patients"] == 2


def test_selection_on_volumes_every_second_evaluation(brats, tmp_path) -> None:
    out = tmp_path / "run"
    assert _train(brats, out, "train.steps=20", "train.eval_every=5", "train.checkpoint_every=5",
                  "data.brats.volume_every=2") == 0
    valid = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
             if '"split": "valid"' in line]
    with_volume = [r["step"] for r in valid if "volume/dice_pooled" in r]
    assert [r["step"] for r in valid] == [5, 10, 15, 20] and with_volume == [10, 20]
    best = torch.load(out / "checkpoints" / "best.pt", weights_only=True)["best"]
    assert best["metric"] == "volume/dice_pooled" and best["step"] in (10, 20)
    by_step = {r["step"]: r["volume/dice_pooled"] for r in valid if "volume/dice_pooled" in r}
    assert best["value"] == pytest.approx(max(by_step.values()))


def test_volume_metric_without_volumes_is_an_error(tmp_path) -> None:
    import tests.toy  # noqa: F401
    from weakseg.errors import WeaksegError
    from weakseg.training.loop import fit

    cfg = load_config(None, ["data.name=toy", "method=toy", "train.steps=2", "train.eval_every=1",
                             "train.select_metric=volume/dice_pooled", "train.device=cpu", "train.batch_size=4"])
    with pytest.raises(WeaksegError, match="has no volume validation"):
        fit(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()                   # refused before any training step


def test_negative_volume_settings_are_refused(brats) -> None:
    from weakseg.data.registry import build_data
    from weakseg.errors import WeaksegError

    cfg = load_config("brats/brats_seg_only", [f"data.brats.root={brats / 'conv'}", "data.brats.volume_every=-1"])
    with pytest.raises(WeaksegError, match="data.brats.volume_every must be >= 0, got -1"):
        build_data(cfg)
