"""``weakseg simulate-missing`` and a train + evaluate smoke run of smile and naive on a tiny phantom."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from tests.organs_toy import make_phantom, organs_overrides
from weakseg.cli.main import main
from weakseg.data.organs import MANIFEST_NAME, fold_split, load_organs


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(tmp_path_factory.mktemp("organs_cli") / "ds")


def test_simulate_missing_writes_partial_copy_and_manifest(phantom, tmp_path, capsys) -> None:
    dst = tmp_path / "partial"
    rc = main(["simulate-missing", str(phantom), str(dst), "--alpha", "0.7", "--fold", "0", "--n-folds", "3",
               "--seed", "1"])
    assert rc == 0
    manifest = json.loads((dst / MANIFEST_NAME).read_text())
    sim = manifest["simulation"]
    split = fold_split([f"abd_{i:04d}" for i in range(1, 7)], n_folds=3, fold=0, seed=0)
    assert sorted(sim["untouched_cases"]) == split["test"] and sim["train_cases"] == split["train"] + split["valid"]
    assert sim["removed_count"] == {"liver": 3, "stomach": 3, "pancreas": 3}         # round(0.7 * 4) each
    block = json.loads((dst / "dataset.json").read_text())["weakseg"]["cases"]
    removed = {(c, k) for k, cases in sim["removed"].items() for c in cases}
    marked = {(c, k) for c, e in block.items() for k, s in e.get("status", {}).items() if s == "unknown"}
    assert marked == removed and not {c for c, _ in removed} & set(split["test"])       # test fold untouched
    lost = [c for c in sim["train_cases"] if sum((c, k) in removed for k in ("liver", "stomach", "pancreas")) == 3]
    assert sim["cases_all_lost"] == lost and sim["n_cases_all_lost"] == len(lost)
    assert f"{len(lost)} of 4 training volumes lost every annotation" in capsys.readouterr().out
    # labels are links to the full ground truth: the loader hides the removed organs and keeps the truth
    assert (dst / "labelsTr" / "abd_0001.nii.gz").is_symlink()
    d = load_organs(dst, n_folds=3, n_valid=1)
    assert d.info["n_hidden_pairs"] == len(removed)
    # same seed, same manifest
    main(["simulate-missing", str(phantom), str(tmp_path / "again"), "--alpha", "0.7", "--fold", "0",
          "--n-folds", "3", "--seed", "1"])
    again = json.loads((tmp_path / "again" / MANIFEST_NAME).read_text())["simulation"]
    assert again["removed"] == sim["removed"]


def test_simulate_missing_materialise_zeroes_removed_organs(phantom, tmp_path) -> None:
    dst = tmp_path / "mat"
    assert main(["simulate-missing", str(phantom), str(dst), "--alpha", "0.5", "--materialise"]) == 0
    sim = json.loads((dst / MANIFEST_NAME).read_text())["simulation"]
    case = sim["removed"]["liver"][0]
    lab = np.asanyarray(nib.load(dst / "labelsTr" / f"{case}.nii.gz").dataobj)
    src = np.asanyarray(nib.load(phantom / "labelsTr" / f"{case}.nii.gz").dataobj)
    assert (src == 1).any() and not (lab == 1).any() and np.array_equal(lab == 2, (src == 2) & (lab == 2))


def test_train_and_evaluate_smile_and_naive(phantom, tmp_path, capsys) -> None:
    overlay = tmp_path / "partial"
    main(["simulate-missing", str(phantom), str(overlay), "--alpha", "0.5", "--fold", "0", "--n-folds", "3"])
    for method in ("smile", "naive"):
        out = tmp_path / method
        sets = [x for o in organs_overrides(overlay, None, **{"train.steps": 2}) for x in ("--set", o)]
        assert main(["train", f"organs/{method}", "--out", str(out), "--no-progress", *sets]) == 0
        assert main(["evaluate", str(out), "--split", "test", "--checkpoint", "last", "--device", "cpu"]) == 0
        report = json.loads((out / "eval_test.json").read_text())
        m = report["metrics"]
        assert report["method"] == method and m["n_volumes"] == 2
        assert 0.0 <= m["mean_dice"] <= 1.0 and {"dice_liver", "dice_stomach", "dice_pancreas"} <= set(m)


def test_runs_stored_before_the_head_option_still_evaluate(phantom, tmp_path) -> None:
    # A checkpoint from before issue 21: one-map head, no model.kwargs.head_channels, no calibrate key.
    import torch

    from weakseg.inference.load import load_run

    out = tmp_path / "old"
    sets = [x for o in organs_overrides(phantom, None, **{"train.steps": 2, "model.kwargs.head_channels": "image",
                                                          "smile.pos_weight": "[3,10,30]"}) for x in ("--set", o)]
    assert main(["train", "organs/smile", "--out", str(out), "--no-progress", *sets]) == 0
    path = out / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True)
    del ckpt["config"]["model"]["kwargs"]["head_channels"], ckpt["config"]["smile"]["calibrate_pos_weight"]
    del ckpt["config"]["marginal"]
    torch.save(ckpt, path)
    run = load_run(out, which="last", device="cpu")
    assert run.method.models["segmenter"].decoder.classifier.in_channels == 1
    assert run.cfg.smile.calibrate_pos_weight is False                  # decoded as it was: raw sigmoids
    assert main(["evaluate", str(out), "--split", "test", "--checkpoint", "last", "--device", "cpu"]) == 0
