"""``weakseg simulate-missing`` and a train + evaluate smoke run of smile and naive on a tiny phantom."""

from __future__ import annotations

import json

import pytest

from tests.organs_toy import make_phantom, organs_overrides
from weakseg.cli.main import main
from weakseg.data.simulate import MANIFEST_NAME


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return make_phantom(tmp_path_factory.mktemp("organs_cli") / "ds")


def test_simulate_missing_writes_partial_copy_and_manifest(phantom, tmp_path, capsys) -> None:
    # What the copy holds is tested on the writer itself (tests/data/test_simulate.py); here the command.
    dst = tmp_path / "partial"
    rc = main(["simulate-missing", str(phantom), str(dst), "--alpha", "0.7", "--fold", "0", "--n-folds", "3",
               "--seed", "1"])
    assert rc == 0
    manifest = json.loads((dst / MANIFEST_NAME).read_text())
    sim = manifest["simulation"]
    removed = {(c, k) for k, cases in sim["removed"].items() for c in cases}
    lost = [c for c in sim["train_cases"] if sum((c, k) in removed for k in ("liver", "stomach", "pancreas")) == 3]
    assert f"{len(lost)} of 4 training volumes lost every annotation" in capsys.readouterr().out


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
