"""A SMILEr run folder made by ``weakseg train``: it moves, and still evaluates and predicts the same."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from tests.organs_toy import make_phantom, organs_overrides
from weakseg.cli.main import main


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(tmp_path_factory.mktemp("smiler_phantom") / "ds")


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
