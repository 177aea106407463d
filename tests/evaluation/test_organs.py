"""Scoring organ slice sets: stacked slice predictions scored per volume and organ."""

from __future__ import annotations

import pytest
import torch

from tests.organs_toy import make_overlay, make_phantom
from weakseg.data.organs import load_organs
from weakseg.evaluation.organs import score_slice_set


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = make_phantom(tmp_path_factory.mktemp("organs") / "ds")
    overlay_path = root.parent / "overlay.json"
    make_overlay(root, overlay_path, alpha=0.7)
    return root, overlay_path


def test_score_slice_set_perfect_and_partial(phantom) -> None:
    root, overlay_path = phantom
    d = load_organs(root, status_overlay=overlay_path, n_folds=3, n_valid=1)
    test = d.splits["test"]
    ids = torch.arange(1, 4).view(1, 3, 1, 1)
    perfect = (test.truth.long() * ids).amax(1)
    s = score_slice_set(perfect, test)
    assert s["foreground_mean"]["Dice"] == pytest.approx(1.0)
    no_pancreas = torch.where(perfect == 3, torch.zeros_like(perfect), perfect)
    s = score_slice_set(no_pancreas, test)
    assert s["mean"]["3"]["Dice"] == 0.0 and s["mean"]["1"]["Dice"] == pytest.approx(1.0)
    assert s["foreground_mean"]["Dice"] == pytest.approx(2 / 3)
