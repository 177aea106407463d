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


@pytest.fixture(scope="module")
def smiler_run(phantom, tmp_path_factory):
    """A finished two-round SMILEr run trained through ``weakseg train``, its test scores and predictions."""
    tmp = tmp_path_factory.mktemp("smiler_cli")
    overlay = tmp / "partial"
    assert main(["simulate-missing", str(phantom), str(overlay), "--alpha", "0.7", "--fold", "0", "--n-folds",
                 "3"]) == 0
    run = tmp / "run"
    sets = [x for o in organs_overrides(overlay, None, **{"smiler.tau": 0.3}) for x in ("--set", o)]
    assert main(["train", "organs/smiler", "--out", str(run), "--no-progress", *sets]) == 0
    inputs = tmp / "imagesTs"
    inputs.mkdir()
    for case in sorted((phantom / "imagesTr").glob("*_0000.nii.gz"))[:2]:
        (inputs / case.name).symlink_to(case)
    return run, inputs, _scores_and_predictions(run, inputs, tmp / "pred_before")


def _scores_and_predictions(run, inputs, pred) -> tuple[dict, dict]:
    assert main(["evaluate", str(run), "--split", "test", "--checkpoint", "last", "--device", "cpu"]) == 0
    metrics = json.loads((run / "eval_test.json").read_text())["metrics"]
    assert main(["predict", str(run), str(inputs), str(pred), "--checkpoint", "last", "--device", "cpu",
                 "--no-progress"]) == 0
    maps = {f.name: np.asanyarray(nib.load(f).dataobj) for f in sorted(pred.glob("*.nii.gz"))}
    assert len(maps) == 2
    return metrics, maps


def _same(a: tuple[dict, dict], b: tuple[dict, dict]) -> None:
    assert a[0] == b[0] and a[0]["mean_dice"] == a[0]["mean_dice"]       # every score, and a real number
    assert a[1].keys() == b[1].keys() and all(np.array_equal(a[1][k], b[1][k]) for k in a[1])


def test_smiler_run_folder_evaluates_and_predicts_after_a_move(smiler_run, tmp_path) -> None:
    import shutil

    run, inputs, before = smiler_run
    assert (run / "round_2" / "checkpoints" / "last.pt").is_file() and (run / "pseudo" / "round_2").is_dir()
    stored = (run / "round_2" / "config.yaml").read_text() + (run / "smiler_rounds.json").read_text()
    assert str(run) not in stored and str(run.resolve()) not in stored   # every stored path is relative
    moved = tmp_path / "elsewhere" / "moved_run"
    shutil.move(str(run), str(moved))
    assert not run.exists()
    _same(_scores_and_predictions(moved, inputs, tmp_path / "pred_moved"), before)
    # neither needs the pseudo-labels: they only ever fed training
    shutil.rmtree(moved / "pseudo")
    _same(_scores_and_predictions(moved, inputs, tmp_path / "pred_no_pseudo"), before)
    shutil.move(str(moved), str(run))                     # the module's other tests use the run where it was


def test_smiler_rounds_train_only_through_their_run(smiler_run, capsys) -> None:
    run = smiler_run[0]
    assert main(["train", "--resume", "--out", str(run / "round_2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"is round 2 of a SMILEr run, which trains only through its run: weakseg train "
                        f"--resume --out {run}") and "\n" not in err
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0   # finished: every round skipped


def test_smiler_runs_stored_with_absolute_paths_still_evaluate_and_predict(smiler_run, tmp_path) -> None:
    import shutil

    import torch
    import yaml

    run, inputs, before = smiler_run
    old = tmp_path / "old_run"
    shutil.copytree(run, old)
    # As runs were stored before the pseudo-labels left the config: absolute paths, here to a folder now gone.
    gone = tmp_path / "gone"
    for path in (old / "checkpoints" / "best.pt", old / "checkpoints" / "last.pt"):
        ckpt = torch.load(path, weights_only=True)
        ckpt["config"]["smiler"] |= {"pseudo_labels": str(gone / "pseudo" / "round_2" / "pseudo.pt"),
                                     "init_from": str(gone / "round_1" / "checkpoints" / "last.pt")}
        del ckpt["config"]["train"]["init_from"]
        torch.save(ckpt, path)
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    cfg["smiler"] |= {"pseudo_labels": None, "init_from": None}
    del cfg["train"]["init_from"]
    (old / "config.yaml").write_text(yaml.safe_dump(cfg))
    _same(_scores_and_predictions(old, inputs, tmp_path / "pred_old"), before)
