"""Translation health: the P->A residual by region and the discriminators' accuracy, on hand-made images."""

from __future__ import annotations

import pytest
import torch

from weakseg.metrics.translation import TranslationHealth, disc_accuracy, image_scores


def scene() -> tuple[torch.Tensor, torch.Tensor]:
    """One 4x4 P image: a 2-pixel object (1.0, 0.5), a 2-pixel clutter patch (0.8 each), background 0.

    Returns x_p (1, 1, 4, 4) and its mask (1, 1, 4, 4).
    """
    x = torch.zeros(1, 1, 4, 4)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 1.0, 0.5
    mask[0, 0, 0, :2] = 1
    x[0, 0, 3, 2:] = 0.8
    return x, mask


def test_identity_translation_removes_nothing() -> None:
    x, mask = scene()
    h = TranslationHealth()
    h.update(x, x.clone(), mask)
    got = h.compute()
    assert got["object_removed"] == 0.0 and got["clutter_changed"] == 0.0
    assert got["residual_on_object"] is None                     # no residual at all: the share is undefined
    assert got["object_area"] == pytest.approx(2 / 16) and got["n_images"] == 1


def test_perfect_removal_puts_the_whole_residual_on_the_object() -> None:
    x, mask = scene()
    x_pa = x * (1 - mask)                                        # the object set to background, clutter kept
    h = TranslationHealth()
    h.update(x, x_pa, mask)
    got = h.compute()
    assert got["object_removed"] == pytest.approx(1.0) and got["clutter_changed"] == 0.0
    assert got["residual_on_object"] == pytest.approx(1.0)
    assert got["residual_object_mean"] == pytest.approx(1.5 / 2) and got["residual_clutter_mean"] == 0.0


def test_a_translation_that_erases_the_clutter_instead() -> None:
    x, mask = scene()
    x_pa = x.clone()
    x_pa[0, 0, 3, 2:] = 0.0                                      # the clutter removed, the object kept
    x_pa[0, 0, 0, 0] = 0.7                                       # 0.3 of the first object pixel taken out
    h = TranslationHealth()
    h.update(x, x_pa, mask)
    got = h.compute()
    # removed 0.3 of 1.5 object intensity; residual |0.3| on the object vs |0.8| + |0.8| on the clutter
    assert got["object_removed"] == pytest.approx(0.3 / 1.5) and got["clutter_changed"] == pytest.approx(1.0)
    assert got["residual_on_object"] == pytest.approx(0.3 / 1.9)
    assert got["residual_object_mean"] == pytest.approx(0.15) and got["residual_clutter_mean"] == pytest.approx(0.8)


def test_batches_pool_and_shapes_are_checked() -> None:
    x, mask = scene()
    one, two = TranslationHealth(), TranslationHealth()
    x_pa = x * (1 - mask) + 0.1 * (1 - mask)
    one.update(torch.cat([x, x]), torch.cat([x_pa, x]), torch.cat([mask, mask]))
    two.update(x, x_pa, mask)
    two.update(x, x, mask)
    assert one.compute() == two.compute() and one.compute()["object_removed"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="must be"):
        one.update(x, x[:, :, :2], mask)
    one.reset()
    assert one.compute()["object_removed"] is None and one.compute()["n_images"] == 0


def test_discriminator_accuracy_and_image_scores() -> None:
    # two scales: image 0 scores mean(1, 3) = 2 and mean(-1) = -1 -> 0.5; image 1 scores -2 and -4 -> -3
    logits = [torch.tensor([[[[1.0, 3.0]]], [[[-2.0, -2.0]]]]), torch.tensor([[[[-1.0]]], [[[-4.0]]]])]
    torch.testing.assert_close(image_scores(logits), torch.tensor([0.5, -3.0]))
    acc = disc_accuracy(torch.tensor([0.5, -3.0, 2.0, 1.0]), torch.tensor([-1.0, 0.2]))
    assert acc == {"real": 0.75, "fake": 0.5}
    with pytest.raises(ValueError, match="at least one"):
        disc_accuracy(torch.tensor([]), torch.tensor([1.0]))
