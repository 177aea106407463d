"""weakseg evaluate --references: the held-out fold of a really partial dataset, scored on every organ."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from weakseg.cli.main import main
from weakseg.errors import WeaksegError
from weakseg.inference.evaluate_references import evaluate_against_references
from weakseg.inference.report import evaluate_run


def _partial_copy(ds, dst):
    """Every case loses stomach and pancreas (status unknown, voxels zeroed): only the liver is annotated."""
    shutil.copytree(ds, dst)
    meta = json.loads((dst / "dataset.json").read_text())
    ids = [p.name[: -len(".nii.gz")] for p in sorted((dst / "labelsTr").iterdir())]
    meta["weakseg"] = {"format": 1, "sources": {"lits": {"annotated": ["liver"]}},
                       "cases": {c: {"source": "lits"} for c in ids}}
    (dst / "dataset.json").write_text(json.dumps(meta))
    for c in ids:
        img = nib.load(dst / "labelsTr" / f"{c}.nii.gz")
        lab = np.asanyarray(img.dataobj).copy()
        lab[lab > 1] = 0
        nib.save(nib.Nifti1Image(lab, img.affine, img.header), dst / "labelsTr" / f"{c}.nii.gz")
    return dst


@pytest.fixture(scope="module")
def partial_run(trained, tmp_path_factory):
    """The trained run pointed at a liver-only copy of its dataset (same cases, hence the same folds)."""
    root, ds, _, _ = trained
    base = tmp_path_factory.mktemp("refs")
    partial = _partial_copy(ds, base / "partial")
    run = base / "run"
    shutil.copytree(root / "run", run)
    path = run / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["data"]["organs"]["root"] = str(partial)
    torch.save(ckpt, path)
    return run, ds


@pytest.mark.filterwarnings("ignore:class .* is annotated .* in no training volume")   # the liver-only copy
def test_references_score_every_organ_where_evaluate_cannot(trained, partial_run, capsys):
    _, _, full_metrics, test_ids = trained
    run, ds = partial_run
    plain = evaluate_run(run, split="test", which="last", device="cpu", write=False)["metrics"]
    assert plain["dice_stomach"] is None and plain["dice_pancreas"] is None      # unknown: not scored
    assert main(["evaluate", str(run), "--split", "test", "--checkpoint", "last", "--device", "cpu",
                 "--references", str(ds / "labelsTr")]) == 0
    out = run / "eval_test_references"
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(pc["case_id"] for pc in summary["metric_per_case"]) == test_ids
    names = summary["weakseg"]["labels"]
    for pc in summary["metric_per_case"]:
        for key, m in pc["metrics"].items():                     # the full-label evaluation of the same model
            assert m["Dice"] == pytest.approx(full_metrics["per_case"][pc["case_id"]][names[key]], abs=1e-6)
    assert (out / "summary.csv").read_text().count("\n") == 1 + 3 * len(test_ids)
    assert {p.name for p in out.glob("*.nii.gz")} == {f"{c}.nii.gz" for c in test_ids}
    assert "stomach: Dice" in capsys.readouterr().out
    # the output folder is not replaced without --overwrite
    with pytest.raises(WeaksegError, match="already exists"):
        evaluate_against_references(run, ds / "labelsTr", which="last", device="cpu")


def test_missing_references_are_named_before_predicting(partial_run, tmp_path):
    run, ds = partial_run
    refs = tmp_path / "refs"
    refs.mkdir()
    shutil.copy(ds / "labelsTr" / "abd_0001.nii.gz", refs)
    with pytest.raises(WeaksegError, match=r"no reference for \d test case"):
        evaluate_against_references(run, refs, which="last", device="cpu", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
