from __future__ import annotations

import pytest
import torch

from weakseg.losses.translation import hinge_discriminator, hinge_generator, l1_per_sample, patch_mean


def maps(*values: float, b: int = 2) -> list[torch.Tensor]:
    """One constant logit map per scale, sizes 6x6, 3x3, 2x2 (MNIST-48 patch maps)."""
    return [torch.full((b, 1, s, s), v) for v, s in zip(values, (6, 3, 2))]


def test_hinge_with_zero_discriminator() -> None:
    # D ≡ 0: relu(1 - 0) + relu(1 + 0) = 2 per discriminator; the generator term is 0.
    assert hinge_discriminator(maps(0, 0, 0), maps(0, 0, 0)).item() == pytest.approx(2.0)
    assert torch.equal(hinge_generator(maps(0, 0, 0)), torch.zeros(2))


@pytest.mark.parametrize(("real", "fake", "expected"), [
    ((2, 2, 2), (-2, -2, -2), 0.0),          # confident and right: both hinges inactive
    ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 2.0),  # relu(0.5) + relu(1.5) = 2.0
    ((1, 0, -1), (0, 0, 0), (0 + 1 + 2) / 3 + 1),   # per-scale means then mean over scales
])
def test_hinge_discriminator_values(real, fake, expected) -> None:
    assert hinge_discriminator(maps(*real), maps(*fake)).item() == pytest.approx(expected)


def test_generator_term_is_minus_mean_logit() -> None:
    m = maps(1.0, 2.0, 3.0)
    torch.testing.assert_close(hinge_generator(m), torch.full((2,), -2.0))
    torch.testing.assert_close(patch_mean(m), torch.full((2,), 2.0))


def test_l1_per_sample() -> None:
    a = torch.zeros(2, 1, 2, 2)
    b = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[0.0, 2.0], [0.0, 0.0]]]])
    torch.testing.assert_close(l1_per_sample(a, b), torch.tensor([1.0, 0.5]))
