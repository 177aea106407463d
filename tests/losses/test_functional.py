from __future__ import annotations

import pytest
import torch

from weakseg.losses.functional import soft_dice_loss_batch


def test_hand_value() -> None:
    probs = torch.tensor([0.5, 0.5, 0.0, 0.0]).view(1, 1, 2, 2)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 2)
    # sum(yp) = 0.5, sum(y) = 1, sum(p) = 1: 1 - (2 * 0.5 + 1) / (1 + 1 + 1) = 1/3
    assert soft_dice_loss_batch(probs, target).item() == pytest.approx(1 / 3)


def test_pooled_over_the_batch_not_averaged_per_image() -> None:
    probs = torch.zeros(2, 1, 2, 2)
    target = torch.zeros(2, 1, 2, 2)
    probs[0, 0, 0, 0] = 1.0
    target[0, 0, 0, 0] = 1.0           # image 0: perfect
    probs[1, 0, 0, :] = 1.0           # image 1: 2 false pixels, empty target
    # pooled: sum(yp) = 1, sum(y) = 1, sum(p) = 3: 1 - 3/5 = 0.4 (per-image mean would be (0 + 2/3) / 2)
    assert soft_dice_loss_batch(probs, target).item() == pytest.approx(0.4)


def test_perfect_prediction_is_about_zero_and_range() -> None:
    g = torch.Generator().manual_seed(0)
    target = (torch.rand(3, 1, 32, 32, generator=g) > 0.5).float()
    assert soft_dice_loss_batch(target, target).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss_batch(target.clamp(0.01, 0.99), target).item() < 0.02
    for _ in range(5):
        v = soft_dice_loss_batch(torch.rand(3, 1, 32, 32, generator=g), target).item()
        assert 0.0 <= v <= 1.0
    assert soft_dice_loss_batch(1 - target, target).item() == pytest.approx(1.0, abs=1e-3)


def test_float32_from_bf16_and_gradient() -> None:
    logits = torch.randn(2, 1, 16, 16, requires_grad=True)
    target = (torch.rand(2, 1, 16, 16) > 0.5).float()
    loss = soft_dice_loss_batch(torch.sigmoid(logits).bfloat16(), target.bfloat16())
    assert loss.dtype == torch.float32 and loss.shape == ()
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        soft_dice_loss_batch(torch.zeros(2, 1, 4, 4), torch.zeros(1, 1, 4, 4))
