"""End to end on the phantom, through the CLI only: merge two partial sources, train SMILE a few steps,
predict imagesTs, score against full references; the predictions sit on the inputs' grids."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np

from tests.organs_toy import partial_source
from weakseg.cli.main import main


def test_merge_train_predict_score(tmp_path, capsys):
    lits = partial_source(tmp_path / "Dataset003_Liver", prefix="liver", seed=1, n_train=4, n_test=2,
                          labels={"background": 0, "liver": 1}, lut=[0, 1, 0, 0])
    pan = partial_source(tmp_path / "Dataset007_Pancreas", prefix="pan", seed=2, n_train=4, n_test=2,
                         labels={"background": 0, "pancreas": 1, "stomach": 2}, lut=[0, 0, 2, 1])
    spec = {"labels": {"background": 0, "liver": 1, "stomach": 2, "pancreas": 3},
            "sources": {"lits": {"root": str(lits), "remap": {"liver": "liver"}},
                        "pan": {"root": str(pan), "remap": {"pancreas": "pancreas", "stomach": "stomach"}}}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    merged = tmp_path / "Dataset950_Abdomen"
    assert main(["merge", str(tmp_path / "spec.json"), str(merged)]) == 0

    run = tmp_path / "run"
    sets = [f"data.organs.root={merged}", "data.organs.n_folds=2", "data.organs.n_valid=1", "model.depth=3",
            "train.steps=20", "train.eval_every=100", "train.checkpoint_every=100", "train.batch_size=4",
            "train.device=cpu"]
    assert main(["train", "organs/smile", "--out", str(run), "--no-progress",
                 *[x for s in sets for x in ("--set", s)]]) == 0

    pred = tmp_path / "pred"
    assert main(["predict", str(run), str(merged / "imagesTs"), str(pred), "--checkpoint", "last",
                 "--device", "cpu", "--no-progress"]) == 0
    refs = tmp_path / "full_refs"                        # complete maps of the test cases, canonical values
    refs.mkdir()
    for src in (lits, pan):
        for f in (src / "full_labelsTs").iterdir():
            shutil.copy(f, refs / f.name)
    shutil.copy(merged / "dataset.json", refs / "dataset.json")
    assert main(["score", str(pred), str(refs)]) == 0
    out = capsys.readouterr().out
    assert "class liver (1): Dice" in out and "class pancreas (3): Dice" in out

    summary = json.loads((pred / "summary.json").read_text())
    cases = sorted(pc["case_id"] for pc in summary["metric_per_case"])
    assert cases == ["liver_0005", "liver_0006", "pan_0005", "pan_0006"]
    assert set(summary["mean"]) == {"1", "2", "3"}
    csv = (pred / "summary.csv").read_text().splitlines()
    assert len(csv) == 1 + 4 * 3 and csv[0].startswith("case_id,label,class,status")
    # the merged labelsTs hold only each source's organs: scored with their statuses, the others are left out
    shutil.copytree(pred, tmp_path / "pred_partial", ignore=shutil.ignore_patterns("summary.*"))
    assert main(["score", str(tmp_path / "pred_partial"), str(merged / "labelsTs"), "--statuses",
                 str(merged / "labelsTs_status.json")]) == 0
    partial = json.loads((tmp_path / "pred_partial" / "summary.json").read_text())
    full = {pc["case_id"]: pc["metrics"] for pc in summary["metric_per_case"]}
    for pc in partial["metric_per_case"]:
        annotated = {"1"} if pc["case_id"].startswith("liver") else {"2", "3"}
        for key, m in pc["metrics"].items():
            if key in annotated:
                assert m["status"] == "mask" and m["Dice"] == full[pc["case_id"]][key]["Dice"]
            else:
                assert m["status"] == "unknown" and m["Dice"] is None
    for case in cases:
        image = nib.load(merged / "imagesTs" / f"{case}_0000.nii.gz")
        p = nib.load(pred / f"{case}.nii.gz")
        assert p.shape == image.shape and p.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(p.affine, image.affine)
        assert set(np.unique(np.asanyarray(p.dataobj)).tolist()) <= {0, 1, 2, 3}
        for field in ("pixdim", "qform_code", "sform_code", "srow_x", "srow_y", "srow_z", "xyzt_units", "dim"):
            np.testing.assert_array_equal(p.header[field], image.header[field])
