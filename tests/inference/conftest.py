"""Shared fixtures of the inference tests."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.organs_toy import make_phantom, organs_overrides
from weakseg.cli.main import main
from weakseg.inference.report import evaluate_run


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A phantom, a SMILE run trained long enough to predict every organ somewhere, and its test fold."""
    root = tmp_path_factory.mktemp("organs_pred")
    ds = make_phantom(root / "ds")
    sets = [x for o in organs_overrides(ds, None, **{"train.steps": 150, "train.lr": 0.01}) for x in ("--set", o)]
    assert main(["train", "organs/smile", "--out", str(root / "run"), "--no-progress", *sets]) == 0
    report = evaluate_run(root / "run", split="test", which="last", device="cpu", write=False)
    test_ids = sorted(report["metrics"]["per_case"])
    ts, refs = root / "imagesTs", root / "refs"
    ts.mkdir()
    refs.mkdir()
    for c in test_ids:
        os.symlink(ds / "imagesTr" / f"{c}_0000.nii.gz", ts / f"{c}_0000.nii.gz")
        os.symlink(ds / "labelsTr" / f"{c}.nii.gz", refs / f"{c}.nii.gz")
    shutil.copy(ds / "dataset.json", refs / "dataset.json")
    return root, ds, report["metrics"], test_ids


