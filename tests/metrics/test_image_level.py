from __future__ import annotations

import math

import pytest
import torch

from weakseg.losses.functional import soft_dice_loss_batch
from weakseg.metrics.image_level import ImageSetMetrics
from weakseg.metrics.policy import EmptyCasePolicy


def _hand_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Six 4x4 images (16 px), K=1; the values below are worked out by hand in the test."""
    probs = torch.zeros(6, 1, 4, 4)
    mask = torch.zeros(6, 1, 4, 4)
    # 0: labelled P; mask 2x2 top-left, predicted at 0.9, plus one false pixel at 0.8 -> TP 4, FP 1, FN 0
    mask[0, 0, :2, :2] = 1
    probs[0, 0, :2, :2] = 0.9
    probs[0, 0, 3, 3] = 0.8
    # 1: labelled P; mask 2 px; 0.6 (hit) and 0.4 (below 0.5) -> TP 1, FP 0, FN 1
    mask[1, 0, 3, :2] = 1
    probs[1, 0, 3, 0] = 0.6
    probs[1, 0, 3, 1] = 0.4
    # 2: A image, 2 px above threshold, 1 px below -> FP image at m=1, not at m=10; area 2/16
    probs[2, 0, 0, :2] = 0.7
    probs[2, 0, 1, 0] = 0.3
    # 3: A image, everything at 0.2 -> clean
    probs[3] = 0.2
    # 4: P image without a mask -> ignored everywhere
    probs[4] = 0.9
    # 5: A image with 12 px predicted -> FP at m=1 and m=10; area 12/16
    probs[5, 0, :3, :] = 0.9
    is_p = torch.tensor([True, True, False, False, True, False])
    has_mask = torch.tensor([True, True, False, False, False, False])
    return probs, mask, is_p, has_mask


EXPECTED = {
    "dice_mean": (8 / 9 + 2 / 3) / 2,           # image 0: 2*4/(8+1+0) = 8/9; image 1: 2/(2+0+1) = 2/3
    "dice_std": (8 / 9 - 2 / 3) / 2,            # population std of two values = half their distance
    "dice_hard_global": 10 / 12,                # pooled TP 5, FP 1, FN 1
    "dice_soft_global": (2 * 4.6 + 1) / (6 + 5.4 + 1),  # sum yp = 3.6 + 1.0, sum y = 6, sum p = 4.4 + 1.0
    "fp_image_rate": 2 / 3,
    "fp_image_rate_10": 1 / 3,
    "fp_area": (2 / 16 + 0 + 12 / 16) / 3,
    "area_ratio_p": (5 + 1) / (5 + 1),          # predicted (TP + FP) over mask (TP + FN) pixels
}


def _check(out: dict) -> None:
    d = out["dice_per_image"]
    assert d["mean"] == pytest.approx(EXPECTED["dice_mean"])
    assert d["std"] == pytest.approx(EXPECTED["dice_std"])
    assert d["median"] == pytest.approx(EXPECTED["dice_mean"])
    assert d["n"] == 2 and d["n_ref_empty"] == 0
    for key in ("dice_hard_global", "dice_soft_global", "fp_image_rate", "fp_image_rate_10", "fp_area",
                "area_ratio_p"):
        assert out[key] == pytest.approx(EXPECTED[key]), key
    assert out["n_p"] == 2 and out["n_a"] == 3
    assert out["policy"] == EmptyCasePolicy().to_dict()


def test_hand_values_one_batch() -> None:
    m = ImageSetMetrics()
    m.update(*_hand_batch())
    out = m.compute()
    _check(out)
    assert set(out) == {"dice_per_image", "dice_hard_global", "dice_soft_global", "area_ratio_p", "fp_image_rate",
                        "fp_image_rate_10", "fp_area", "n_p", "n_a", "policy"}


def test_streaming_two_batches_equals_one() -> None:
    probs, mask, is_p, has_mask = _hand_batch()
    m = ImageSetMetrics()
    for sl in (slice(0, 3), slice(3, 6)):
        m.update(probs[sl], mask[sl], is_p[sl], has_mask[sl])
    _check(m.compute())
    m.reset()
    m.update(probs, mask, is_p, has_mask)
    _check(m.compute())


def test_soft_global_is_one_minus_the_batch_loss() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(3, 1, 32, 32, generator=g)
    mask = (torch.rand(3, 1, 32, 32, generator=g) > 0.7).float()
    m = ImageSetMetrics()
    m.update(probs, mask, torch.ones(3, dtype=torch.bool), torch.ones(3, dtype=torch.bool))
    assert m.compute()["dice_soft_global"] == pytest.approx(1 - soft_dice_loss_batch(probs, mask).item(), rel=1e-5)


def test_zero_cases_give_none_never_nan() -> None:
    out = ImageSetMetrics().compute()
    assert out["dice_per_image"] == {"mean": None, "std": None, "median": None, "n": 0, "n_ref_empty": 0}
    for key in ("dice_hard_global", "dice_soft_global", "area_ratio_p", "fp_image_rate", "fp_image_rate_10",
                "fp_area"):
        assert out[key] is None
    assert out["n_p"] == 0 and out["n_a"] == 0
    # A-only batch: Dice metrics None, FP metrics defined
    m = ImageSetMetrics()
    m.update(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.bool))
    out = m.compute()
    assert out["dice_hard_global"] is None and out["fp_image_rate"] == 0.0 and out["fp_area"] == 0.0


def test_empty_p_mask_follows_the_policy_and_is_counted() -> None:
    probs = torch.zeros(3, 1, 4, 4)
    mask = torch.zeros(3, 1, 4, 4)
    mask[0, 0, 0, 0] = 1
    probs[0, 0, 0, 0] = 0.9      # image 0: perfect, Dice 1
    probs[2, 0, 1, 1] = 0.9      # image 2: empty mask, one predicted pixel -> Dice 0 whatever the policy
    # image 1: empty mask, empty prediction -> excluded ("exclude") or 1 ("one")
    args = (probs, mask, torch.ones(3, dtype=torch.bool), torch.ones(3, dtype=torch.bool))
    m = ImageSetMetrics()
    m.update(*args)
    d = m.compute()["dice_per_image"]
    assert d["n"] == 2 and d["n_ref_empty"] == 2 and d["mean"] == pytest.approx(0.5)
    m = ImageSetMetrics(policy=EmptyCasePolicy(dice_both_empty="one"))
    m.update(*args)
    d = m.compute()["dice_per_image"]
    assert d["n"] == 3 and d["n_ref_empty"] == 2 and d["mean"] == pytest.approx(2 / 3)


def test_multi_class_nests_per_class() -> None:
    probs, mask, is_p, has_mask = _hand_batch()
    probs2, mask2 = torch.cat([probs, 1 - probs], 1), torch.cat([mask, mask], 1)  # (B, 2, 4, 4)
    m = ImageSetMetrics(class_names=["digit", "other"])
    m.update(probs2, mask2, is_p, has_mask)
    out = m.compute()
    assert set(out) == {"classes", "policy"}
    _check({**out["classes"]["digit"], "policy": out["policy"]})
    assert out["classes"]["other"]["n_p"] == 2
    assert not math.isclose(out["classes"]["other"]["dice_soft_global"], EXPECTED["dice_soft_global"])


def test_per_class_flags_and_is_a() -> None:
    probs, mask, is_p, has_mask = _hand_batch()
    m = ImageSetMetrics()
    # image 5 declared neither P nor A (unknown): leaves the FP metrics
    is_a = ~is_p
    is_a[5] = False
    m.update(probs, mask, is_p[:, None], has_mask[:, None], is_a=is_a)
    out = m.compute()
    assert out["n_a"] == 2 and out["fp_image_rate"] == pytest.approx(0.5)
    assert out["fp_area"] == pytest.approx((2 / 16) / 2)


def test_bad_inputs() -> None:
    m = ImageSetMetrics()
    with pytest.raises(ValueError, match="sigmoid"):
        m.update(torch.full((1, 1, 4, 4), 2.0), torch.zeros(1, 1, 4, 4), torch.ones(1, dtype=torch.bool))
    with pytest.raises(ValueError, match="is_p"):
        m.update(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="contain 1"):
        ImageSetMetrics(fp_min_pixels=(10,))
