"""BraTS training augmentation (weakseg.data.augment): geometry, masks, seeding, resume, defaults."""

from __future__ import annotations

import pytest
import torch

from weakseg.config import load_config
from weakseg.data.augment import SliceAugment, build_augment
from weakseg.data.batch import Batch


def _batch(b: int = 6, h: int = 48, w: int = 24) -> Batch:
    """Slices with an elliptic 'brain' (non-zero) holding a square tumour; channel 0 carries the mask."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    brain = ((yy - h / 2) / (0.4 * h)) ** 2 + ((xx - w / 2) / (0.4 * w)) ** 2 <= 1          # (H, W)
    mask = torch.zeros(b, 1, h, w, dtype=torch.uint8)
    mask[:, :, h // 2 - 6:h // 2 + 6, w // 2 - 4:w // 2 + 4] = 1
    g = torch.Generator().manual_seed(0)
    image = (torch.rand(b, 4, h, w, generator=g) * 0.4 - 0.5) * brain                     # (B, 4, H, W)
    image[:, 0] = torch.where(mask[:, 0] > 0, torch.tensor(0.8), image[:, 0])
    return Batch(image=image, status=torch.zeros(b, 1, dtype=torch.int8), mask=mask,
                 has_mask=torch.ones(b, dtype=torch.bool), index=torch.arange(b))


def test_identity_when_every_transform_is_off() -> None:
    batch = _batch()
    out = SliceAugment(rotate_deg=0, zoom=0, warp_px=0, flips=False, shift=0)(batch, step=3)
    torch.testing.assert_close(out.image, batch.image, rtol=0, atol=1e-6)
    assert torch.equal(out.mask, batch.mask)


def test_same_step_same_draw_other_step_other_draw() -> None:
    aug, batch = SliceAugment(seed=1), _batch()
    a, b = aug(batch, step=5, stream=0), aug(batch, step=5, stream=0)
    assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)
    c = aug(batch, step=6, stream=0)
    d = aug(batch, step=5, stream=1)
    assert not torch.equal(a.image, c.image) and not torch.equal(a.image, d.image)
    assert not torch.equal(a.image[0], a.image[1])          # every image of a batch draws its own transform


def test_mask_stays_binary_aligned_and_about_the_same_size() -> None:
    batch = _batch(b=16)
    out = SliceAugment(seed=2)(batch, step=0)
    assert out.mask.dtype == torch.uint8 and set(out.mask.unique().tolist()) <= {0, 1}
    assert out.image.shape == batch.image.shape and out.image.dtype == batch.image.dtype
    # channel 0 was 0.8 exactly on the mask: after the same warp, its bright pixels are the mask's pixels
    bright = out.image[:, 0] > 0.55                                          # 0.8 shifted by at most 0.1
    m = out.mask[:, 0] > 0
    iou = (bright & m).sum() / (bright | m).sum()
    assert iou > 0.85
    ratio = out.mask.sum().item() / batch.mask.sum().item()
    assert 0.85 < ratio < 1.15                                               # zoom +-10%: area +-21% per image


def test_intensity_shift_keeps_background_zero_and_clips() -> None:
    batch = _batch()
    out = SliceAugment(rotate_deg=0, zoom=0, warp_px=0, flips=False, shift=0.1, seed=3)(batch, step=0)
    brain = batch.image != 0
    assert (out.image[~brain] == 0).all()
    delta = (out.image - batch.image)[brain]
    assert delta.abs().max() <= 0.1 + 1e-6 and out.image.abs().max() <= 1.0
    for i in range(len(batch.image)):                                        # one offset per image
        inside = (batch.image[i] != 0) & (batch.image[i] < 0.7) & (batch.image[i] > -0.85)
        d = (out.image[i] - batch.image[i])[inside]
        assert d.max() - d.min() < 1e-5


def test_on_for_brats_configs_off_for_mnist() -> None:
    brats = load_config("brats/brats_genseg", ["data.brats.root=/nowhere"])
    assert brats.data.brats.augment and build_augment(brats) is not None
    assert brats.train.select_metric == "volume/dice_pooled"
    assert build_augment(load_config("mnist/mnist48_simple_seg_only")) is None
    off = load_config("brats/brats_seg_only", ["data.brats.augment=false"])
    assert build_augment(off) is None


@pytest.mark.parametrize("method", ["seg_only", "genseg"])
def test_resume_with_augmentation_equals_uninterrupted(tmp_path, method) -> None:
    """Augmentation draws are seeded per step: 6 steps = 3 steps + resume for 3, bit for bit on CPU."""
    from tests.brats_toy import TINY
    from weakseg.data.brats.synthetic import write_synthetic_brats
    from weakseg.data.brats.convert import BratsConvertOptions, convert_brats
    from weakseg.training.checkpoint import load_checkpoint
    from weakseg.training.loop import fit

    write_synthetic_brats(tmp_path / "src", n_subjects=5, naming="2020", shape=(32, 32, 12), n_tumour_free=1)
    convert_brats(tmp_path / "src", tmp_path / "conv", options=BratsConvertOptions(proportions=(3, 1, 1),
                                                                                  labelled_fraction=0.5))
    sets = [f"data.brats.root={tmp_path / 'conv'}", *TINY, "train.eval_every=3", "train.checkpoint_every=3"]
    if method == "genseg":
        sets.append("model.kwargs.discriminator.widths=[64, 128]")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(load_config(f"brats/brats_{method}", [*sets, "train.steps=6"]), tmp_path / "a", progress=False)
        fit(load_config(f"brats/brats_{method}", [*sets, "train.steps=3"]), tmp_path / "b", progress=False)
        fit(load_config(f"brats/brats_{method}", [*sets, "train.steps=6"]), tmp_path / "b", resume=True,
            progress=False)
    finally:
        torch.set_num_threads(threads)
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["models"]
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["models"]
    for name in a:
        for key in a[name]:
            torch.testing.assert_close(a[name][key], b[name][key], rtol=0, atol=0)
