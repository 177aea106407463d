"""The BraTS chain through the CLI on synthetic data: convert -> train (seg_only, genseg) -> predict -> score."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from weakseg.cli.main import main
from weakseg.data.brats.synthetic import write_synthetic_brats

TINY = ["--set", "model.width=0.0625", "--set", "model.depth=3", "--set", "train.batch_size=4",
        "--set", "train.steps=4", "--set", "train.eval_every=2", "--set", "train.checkpoint_every=2",
        "--set", "train.log_every=2", "--no-progress"]


def test_convert_train_predict_score(tmp_path, capsys):
    subjects = write_synthetic_brats(tmp_path / "src", n_subjects=6, naming="2020", shape=(48, 48, 16),
                                     n_tumour_free=2, orientations={2: "PSL"})
    healthy = [s.subject_id for s in subjects if s.tumour_side is None]
    assert len(healthy) == 2
    ids = [s.subject_id for s in subjects]
    # valid holds a tumour patient, so best.pt (selected on valid Dice) exists after a few steps
    split = {"train": [ids[0], ids[1], ids[2], ids[4]], "valid": [ids[3]], "test": [ids[5]]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    conv = tmp_path / "conv"
    assert main(["convert", "brats", str(tmp_path / "src"), str(conv), "--split-file", str(tmp_path / "split.json"),
                 "--labelled-fraction", "0.5", "--no-progress"]) == 0
    assert (conv / "conversion_report.json").is_file()

    for method, steps in (("seg_only", 4), ("genseg", 2)):
        run = tmp_path / f"run_{method}"
        assert main(["train", f"configs/brats/brats_{method}.yaml", "--out", str(run),
                     "--set", f"data.brats.root={conv}", *TINY, "--set", f"train.steps={steps}"]) == 0
        assert (run / "checkpoints" / "best.pt").is_file()

    pred = tmp_path / "pred"
    assert main(["predict", str(tmp_path / "run_seg_only"), str(tmp_path / "src"), str(pred), "--references",
                 "--tta", "--batch-size", "32", "--no-progress"]) == 0
    for s in subjects:                                        # subject 2 is stored PSL, the others LPS
        src = nib.load(s.folder / f"{s.subject_id}_flair.nii.gz")
        out = nib.load(pred / f"{s.subject_id}.nii.gz")
        assert out.shape == src.shape and out.get_data_dtype() == np.uint8
        assert np.allclose(out.affine, src.affine)
        assert set(np.unique(np.asanyarray(out.dataobj)).tolist()) <= {0, 1}

    summary_path = tmp_path / "summary.json"
    assert main(["score", str(pred), str(pred / "references"), "--labels", '{"tumour": 1}',
                 "--out", str(summary_path)]) == 0
    summary = json.loads(summary_path.read_text())
    cases = {c["case_id"]: c["metrics"]["1"] for c in summary["metric_per_case"]}
    assert set(cases) == set(ids)
    for cid, m in cases.items():
        assert "Dice" in m and "HD95" in m
        if cid in healthy:
            assert m["n_ref"] == 0 and m["outcome"] in ("false_alarm", "both_empty")
            if m["outcome"] == "false_alarm":                 # a healthy false positive counts as Dice 0
                assert m["Dice"] == 0.0
        else:
            assert m["n_ref"] > 0 and m["Dice"] is not None
    assert summary["weakseg"]["image_level"]["n_healthy"] == 2
    assert summary_path.with_suffix(".csv").is_file()
