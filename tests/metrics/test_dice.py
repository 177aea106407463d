from __future__ import annotations

import math

import pytest
import torch
from monai.metrics import DiceMetric

from weakseg.metrics.counts import confusion_counts
from weakseg.metrics.dice import dice_from_counts, iou_from_counts


@pytest.mark.parametrize(("tp", "fp", "fn", "expected"), [
    (8, 0, 0, 1.0), (4, 4, 0, 8 / 12),    # perfect; 2TP / (2TP + FP + FN) = 8 / 12
    (3, 1, 2, 6 / 9),                     # 6 / (6 + 1 + 2)
    (0, 3, 0, 0.0), (0, 0, 5, 0.0),       # false alarm on an empty reference; missed structure
])
def test_dice_from_counts(tp: int, fp: int, fn: int, expected: float) -> None:
    got = dice_from_counts(torch.tensor([[tp]]), torch.tensor([[fp]]), torch.tensor([[fn]]))
    assert got.item() == pytest.approx(expected)


# The four empty combinations (ref, pred) under both policies: only "both empty" depends on the policy.
@pytest.mark.parametrize(("tp", "fp", "fn", "exclude", "one"), [
    (5, 1, 0, 10 / 11, 10 / 11),          # both non-empty
    (0, 0, 4, 0.0, 0.0),                  # ref non-empty, pred empty (missed)
    (0, 2, 0, 0.0, 0.0),                  # ref empty, pred non-empty (false alarm)
    (0, 0, 0, math.nan, 1.0),             # both empty
])
def test_dice_empty_combinations_under_both_policies(tp: int, fp: int, fn: int, exclude: float, one: float) -> None:
    t = [torch.tensor([[v]]) for v in (tp, fp, fn)]
    got_exclude = dice_from_counts(*t, both_empty="exclude").item()
    got_one = dice_from_counts(*t, both_empty="one").item()
    if math.isnan(exclude):
        assert math.isnan(got_exclude)
    else:
        assert got_exclude == pytest.approx(exclude)
    assert got_one == pytest.approx(one)


@pytest.mark.parametrize(
    ("tp", "fp", "fn", "expected"), [(4, 4, 0, 0.5), (3, 1, 2, 0.5), (0, 2, 0, 0.0), (0, 0, 3, 0.0)]
)
def test_iou_from_counts(tp: int, fp: int, fn: int, expected: float) -> None:
    got = iou_from_counts(torch.tensor([[tp]]), torch.tensor([[fp]]), torch.tensor([[fn]]))
    assert got.item() == pytest.approx(expected)
    assert math.isnan(iou_from_counts(*[torch.tensor([[0]])] * 3).item())
    assert iou_from_counts(*[torch.tensor([[0]])] * 3, both_empty="one").item() == 1.0


def test_bad_policy_word() -> None:
    with pytest.raises(ValueError, match="exclude, one"):
        zero = torch.tensor([[0]])
        dice_from_counts(zero, zero, zero, both_empty="zero")  # type: ignore[arg-type]


@pytest.mark.parametrize("spatial", [(32, 32), (16, 16, 16)])
def test_dice_matches_monai_on_non_empty_cases(spatial: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(4, 3, *spatial, generator=g) > 0.5         # (B, K, *S)
    ref = torch.rand(4, 3, *spatial, generator=g) > 0.5
    ours = dice_from_counts(*confusion_counts(pred, ref))         # (B, K)
    theirs = DiceMetric(include_background=True, ignore_empty=False, reduction="none")(pred.float(), ref.float())
    torch.testing.assert_close(ours.float(), theirs.float())
