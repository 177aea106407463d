"""SMILE loss, masked Dice, softmax baselines and decoding (smile.md §5-7, §17.3, §17.8)."""

from __future__ import annotations

import math

import pytest
import torch
from monai.losses import DiceLoss

from weakseg.data.status import encode_statuses
from weakseg.errors import WeaksegError
from weakseg.losses.partial_label import (
    NORMALISATIONS,
    MaskedDiceLoss,
    SmileLoss,
    WeightedBCELoss,
    ce_targets,
    cross_entropy,
    drop_incomplete,
    is_complete,
    masked_dice_loss,
    spatial_ignore_targets,
    weighted_bce,
)

LN2 = math.log(2.0)


def _hand_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # class 0: z = (0, ln 3), y = (1, 0), w = (1, 1) -> BCE ln2 and -ln(1 - 0.75) = 2 ln2
    # class 1: z = (0, 0),    y = (0, 1), w = (1, 0) -> BCE ln2 and (ignored)
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])                 # (B=1, K=2, N=2)
    target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    weight = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])
    return logits, target, weight


@pytest.mark.parametrize(("normalisation", "expected"), [
    ("sum", 4 * LN2),                        # ln2 + 2 ln2 + ln2
    ("known_mean", 4 * LN2 / 3),             # / Σ W = 3
    ("all_mean", 4 * LN2 / 4),               # / B·K·N = 4
    ("class_mean", (3 * LN2 / 2 + LN2) / 2),  # class 0 mean 1.5 ln2, class 1 mean ln2
])
def test_normalisations_hand_values(normalisation: str, expected: float) -> None:
    got = weighted_bce(*_hand_case(), normalisation=normalisation)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_pos_weight_hand_value() -> None:
    # pos_weight 2 on class 0 doubles its only positive term: sum = 2 ln2 + 2 ln2 + ln2
    got = weighted_bce(*_hand_case(), normalisation="sum", pos_weight=[2.0, 1.0])
    assert got.item() == pytest.approx(5 * LN2, rel=1e-6)


def _random(seed: int = 0, shape: tuple[int, ...] = (2, 3, 8, 8)) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g)
    target = (torch.rand(shape, generator=g) > 0.5).float()
    weight = (torch.rand(shape, generator=g) > 0.4).float()
    return logits, target, weight


LOSSES = [*(lambda z, y, w, n=n: weighted_bce(z, y, w, normalisation=n) for n in NORMALISATIONS),
          lambda z, y, w: masked_dice_loss(z, y, w), lambda z, y, w: masked_dice_loss(z, y, w, batch=False)]


@pytest.mark.parametrize("loss_fn", LOSSES, ids=[*NORMALISATIONS, "dice", "dice_per_case"])
def test_ignored_pixels_change_neither_loss_nor_gradients(loss_fn) -> None:
    logits, target, weight = _random()
    z1 = logits.clone().requires_grad_(True)
    loss1 = loss_fn(z1, target, weight)
    loss1.backward()
    ignored = weight == 0
    assert ignored.any() and torch.all(z1.grad[ignored] == 0), "gradient must be exactly 0 where W = 0"
    assert z1.grad[~ignored].abs().sum() > 0

    wild = logits.clone()
    wild[ignored] = torch.tensor([1e4, -1e4, float("inf"), float("nan")]).repeat(ignored.sum() // 4 + 1)[
        : int(ignored.sum())]
    z2 = wild.requires_grad_(True)
    flipped = torch.where(ignored, 1 - target, target)
    loss2 = loss_fn(z2, flipped, weight)
    loss2.backward()
    assert torch.equal(loss1, loss2)
    assert torch.equal(z1.grad, z2.grad)


def test_all_mask_equals_plain_bce() -> None:
    logits, target, _ = _random(1)
    ones = torch.ones_like(logits)
    plain = torch.nn.BCEWithLogitsLoss()(logits, target)
    torch.testing.assert_close(weighted_bce(logits, target, ones, normalisation="all_mean"), plain)
    torch.testing.assert_close(weighted_bce(logits, target, ones), plain)     # known_mean = mean when W = 1
    pw = torch.tensor([1.0, 3.0, 0.5])
    plain_pw = torch.nn.BCEWithLogitsLoss(pos_weight=pw.view(3, 1, 1))(logits, target)
    torch.testing.assert_close(WeightedBCELoss(pos_weight=pw)(logits, target, ones), plain_pw)


def test_all_mean_equals_pytorch_weighted_mean() -> None:
    logits, target, weight = _random(2)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, weight=weight)
    torch.testing.assert_close(weighted_bce(logits, target, weight, normalisation="all_mean"), ref)


@pytest.mark.parametrize("loss_fn", LOSSES, ids=[*NORMALISATIONS, "dice", "dice_per_case"])
def test_all_zero_weight_gives_zero_not_nan(loss_fn) -> None:
    logits, target, _ = _random(3)
    z = logits.requires_grad_(True)
    loss = loss_fn(z, target, torch.zeros_like(logits))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(z.grad == 0)


def test_masked_dice_matches_monai_when_everything_is_known() -> None:
    logits, target, _ = _random(4)
    ones = torch.ones_like(logits)
    for batch in (True, False):
        ref = DiceLoss(sigmoid=True, batch=batch)(logits, target)
        torch.testing.assert_close(masked_dice_loss(logits, target, ones, batch=batch), ref)


def test_masked_dice_skips_empty_channels_and_masks_per_channel() -> None:
    logits, target, _ = _random(5, (1, 2, 4, 4))
    weight = torch.ones_like(logits)
    weight[:, 1] = 0                                                             # channel 1 carries nothing
    only0 = DiceLoss(sigmoid=True, batch=True)(logits[:, :1], target[:, :1])
    torch.testing.assert_close(masked_dice_loss(logits, target, weight), only0)
    # hand value: one known pixel per channel, p = 0.5 on both, y = 1 on channel 0 and 0 on channel 1
    z = torch.zeros(1, 2, 1, 2)
    y = torch.tensor([[[[1.0, 1.0]], [[0.0, 1.0]]]])
    w = torch.tensor([[[[1.0, 0.0]], [[1.0, 0.0]]]])
    s = 1e-5
    d0 = (2 * 0.5 + s) / (0.5 + 1 + s)
    d1 = s / (0.5 + s)
    assert masked_dice_loss(z, y, w).item() == pytest.approx(((1 - d0) + (1 - d1)) / 2, rel=1e-6)


def test_autocast_safe_float32() -> None:
    logits, target, weight = _random(6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = torch.nn.functional.conv2d(logits, torch.eye(3).view(3, 3, 1, 1))  # bf16 under autocast
        assert z.dtype == torch.bfloat16
        loss = weighted_bce(z, target, weight)
        dice = masked_dice_loss(z, target, weight)
    assert loss.dtype == dice.dtype == torch.float32
    torch.testing.assert_close(loss, weighted_bce(z.float(), target, weight))


def test_smile_loss_terms() -> None:
    logits, target, weight = _random(7)
    terms = SmileLoss()(logits, target, weight)
    assert list(terms) == ["bce"]
    terms = SmileLoss(normalisation="class_mean", dice_weight=0.5)(logits, target, weight)
    torch.testing.assert_close(terms["bce"], weighted_bce(logits, target, weight, normalisation="class_mean"))
    torch.testing.assert_close(terms["dice"], 0.5 * MaskedDiceLoss()(logits, target, weight))
    with pytest.raises(ValueError, match="dice_weight"):
        SmileLoss(dice_weight=-1.0)
    with pytest.raises(ValueError, match="normalisation"):
        weighted_bce(logits, target, weight, normalisation="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one shape"):
        weighted_bce(logits, target[:, :2], weight)


# ---- baselines -----------------------------------------------------------------------------------------

MASK = torch.tensor([[[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]]] * 3, dtype=torch.uint8)  # (B=3, K=3, 5)
STATUS = torch.stack([encode_statuses(s) for s in (
    ["mask", "mask", "mask"], ["mask", "unknown", "absent"], ["unknown", "mask", "present"])])


def test_naive_and_oracle_targets() -> None:
    assert ce_targets(MASK).tolist() == [[1, 1, 2, 3, 0]] * 3                    # oracle: full labels
    naive = ce_targets(MASK, STATUS)
    assert naive.tolist() == [[1, 1, 2, 3, 0], [1, 1, 0, 0, 0], [0, 0, 2, 0, 0]]  # missing organs -> background


def test_spatial_ignore_masks_all_background_of_incomplete_cases() -> None:
    got = spatial_ignore_targets(MASK, STATUS, ignore_index=-1)
    assert got.tolist() == [[1, 1, 2, 3, 0],           # complete: background kept
                            [1, 1, -1, -1, -1],        # unknown stomach: every non-mask voxel ignored
                            [-1, -1, 2, -1, -1]]
    assert is_complete(STATUS).tolist() == [True, False, False]


def test_cross_entropy_ignores_and_never_nans() -> None:
    logits = torch.randn(3, 4, 5, requires_grad=True)
    target = spatial_ignore_targets(MASK, STATUS)
    keep = target != -100
    ref = torch.nn.functional.cross_entropy(logits.permute(0, 2, 1)[keep], target[keep])
    torch.testing.assert_close(cross_entropy(logits, target), ref)
    empty = cross_entropy(logits, torch.full((3, 5), -100))
    empty.backward()
    assert empty.item() == 0.0 and torch.all(logits.grad == 0)


def test_cross_entropy_class_weight_is_a_weighted_mean() -> None:
    logits = torch.randn(3, 4, 5)
    target = spatial_ignore_targets(MASK, STATUS)
    keep = target != -100
    w = torch.tensor([1.0, 2.0, 5.0, 10.0])
    ref = torch.nn.functional.cross_entropy(logits.permute(0, 2, 1)[keep], target[keep], weight=w)
    torch.testing.assert_close(cross_entropy(logits, target, class_weight=w.tolist()), ref)
    # by hand: sum of w[y] * nll over kept voxels / sum of w[y]
    nll = -torch.log_softmax(logits, 1).gather(1, target.clamp_min(0)[:, None])[:, 0]
    hand = (w[target.clamp_min(0)] * nll)[keep].sum() / w[target[keep]].sum()
    torch.testing.assert_close(cross_entropy(logits, target, class_weight=w), hand)
    assert cross_entropy(logits, torch.full((3, 5), -100), class_weight=w).item() == 0.0
    with pytest.raises(ValueError, match="class_weight"):
        cross_entropy(logits, target, class_weight=[1.0, 2.0])


def test_drop_incomplete() -> None:
    st = {"a": {"liver": "mask", "stomach": "absent"}, "b": {"liver": "mask", "stomach": "unknown"},
          "c": {"liver": "present", "stomach": "mask"}, "d": {"liver": "mask", "stomach": "mask"}}
    assert drop_incomplete(st) == ["a", "d"]
    with pytest.raises(WeaksegError, match="none of the 2 training cases"):
        drop_incomplete({"b": st["b"], "c": st["c"]})


def test_softmax_dice_matches_monai_and_ignores_ignored_voxels() -> None:
    from monai.losses import DiceLoss

    from weakseg.losses.partial_label import softmax_dice_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, 6, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (2, 6, 6), generator=g)
    ref = DiceLoss(softmax=True, to_onehot_y=True, include_background=False, batch=True)(logits, target[:, None])
    torch.testing.assert_close(softmax_dice_loss(logits, target), ref)
    ignored = target.clone()
    ignored[0, :3] = -100
    loss = softmax_dice_loss(logits, ignored)
    loss.backward()
    assert logits.grad[0, :, :3].abs().sum() == 0 and logits.grad[0, :, 3:].abs().sum() > 0
    other = logits.detach().clone()
    other[0, :, :3] = torch.randn(4, 3, 6, generator=g)                    # change only ignored voxels
    torch.testing.assert_close(softmax_dice_loss(other, ignored), loss.detach())


# ---- marginal and exclusion losses (Shi et al. 2021) ---------------------------------------------------

def _marginal_hand_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # K = 2. Softmax probabilities (background, liver, stomach) at two voxels: (0.5, 0.3, 0.2), (0.2, 0.2, 0.6).
    # Liver annotated, stomach unknown; voxel 0 labelled 0, voxel 1 labelled liver.
    probs = torch.tensor([[[0.5, 0.2], [0.3, 0.2], [0.2, 0.6]]])                     # (B=1, K+1=3, N=2)
    return probs.log(), torch.tensor([[0, 1]]), encode_statuses(["mask", "unknown"])[None]


def test_marginal_cross_entropy_hand_value() -> None:
    from weakseg.losses.partial_label import marginal_cross_entropy

    logits, target, status = _marginal_hand_case()
    # voxel 0: merged background q0 = p0 + p_stomach = 0.7; voxel 1: -log p_liver = -log 0.2
    expected = (-math.log(0.7) - math.log(0.2)) / 2
    assert marginal_cross_entropy(logits, target, status).item() == pytest.approx(expected, rel=1e-6)
    # class weights (bg 1, liver 3, stomach 10): (1·(-log 0.7) + 3·(-log 0.2)) / (1 + 3)
    weighted = (-math.log(0.7) - 3 * math.log(0.2)) / 4
    got = marginal_cross_entropy(logits, target, status, class_weight=[1.0, 3.0, 10.0])
    assert got.item() == pytest.approx(weighted, rel=1e-6)
    # the same map with the stomach annotated is plain CE: -log 0.5 at voxel 0
    full = encode_statuses(["mask", "mask"])[None]
    assert marginal_cross_entropy(logits, target, full).item() == pytest.approx(
        (-math.log(0.5) - math.log(0.2)) / 2, rel=1e-6)


def test_marginal_dice_and_exclusion_hand_values() -> None:
    from weakseg.losses.partial_label import exclusion_loss, marginal_dice_loss

    logits, target, status = _marginal_hand_case()
    s = 1e-5
    # only the liver is scored: p = (0.3, 0.2), y = (0, 1) -> Dice (2·0.2 + s) / (0.5 + 1 + s)
    liver = (2 * 0.2 + s) / (0.5 + 1 + s)
    assert marginal_dice_loss(logits, target, status).item() == pytest.approx(1 - liver, rel=1e-5)
    # E_liver = {} (no other organ labelled); E_stomach = {voxel 1} (labelled liver), p_stomach = (0.2, 0.6)
    assert exclusion_loss(logits, target).item() == pytest.approx(2 * 0.6 / (1 + 0.8 + s), rel=1e-5)
    assert exclusion_loss(logits, target, mode="log").item() == pytest.approx(-math.log(1 - 0.6), rel=1e-5)
    with pytest.raises(ValueError, match="exclusion mode"):
        exclusion_loss(logits, target, mode="ce")  # type: ignore[arg-type]


def test_marginal_loss_with_every_class_annotated_is_plain_ce_plus_dice() -> None:
    from weakseg.losses.partial_label import MarginalLoss, marginal_cross_entropy, marginal_dice_loss

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 4, 6, 6, generator=g)
    target = torch.randint(0, 4, (3, 6, 6), generator=g)
    full = encode_statuses(["mask", "absent", "mask"]).expand(3, 3)                   # absent is annotated
    torch.testing.assert_close(marginal_cross_entropy(logits, target, full), cross_entropy(logits, target))
    w = [1.0, 3.0, 10.0, 30.0]
    torch.testing.assert_close(marginal_cross_entropy(logits, target, full, class_weight=w),
                               cross_entropy(logits, target, class_weight=w))
    from weakseg.losses.partial_label import softmax_dice_loss
    torch.testing.assert_close(marginal_dice_loss(logits, target, full), softmax_dice_loss(logits, target))
    terms = MarginalLoss(class_weight=w, dice_weight=0.5, exclusion_weight=0.0)(logits, target, full)
    assert set(terms) == {"ce", "dice"}
    torch.testing.assert_close(terms["dice"], 0.5 * softmax_dice_loss(logits, target))
    with pytest.raises(ValueError, match="exclusion_weight"):
        MarginalLoss(exclusion_weight=-1.0)


def test_marginal_gradients_are_exactly_zero_where_nothing_is_known() -> None:
    from weakseg.losses.partial_label import exclusion_loss, marginal_cross_entropy, marginal_dice_loss

    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 4, 5, 5, generator=g, requires_grad=True)
    mask = torch.zeros(2, 3, 5, 5, dtype=torch.uint8)
    mask[:, 0, :2] = 1                                                                 # liver voxels
    mask[:, 1, 3:] = 1                                                                 # stomach voxels
    status = torch.stack([encode_statuses(["unknown"] * 3), encode_statuses(["mask", "mask", "unknown"])])
    target = ce_targets(mask, status)                                                  # image 0: all zeros
    loss = marginal_cross_entropy(logits, target, status) + marginal_dice_loss(logits, target, status)
    loss.backward()
    assert torch.all(logits.grad[0] == 0), "an image with no annotated class must give exactly zero gradient"
    assert logits.grad[1].abs().sum() > 0
    # log exclusion: zero gradient outside E (E = liver and stomach voxels of image 1, for the other organs)
    z = logits.detach().clone().requires_grad_(True)
    exclusion_loss(z, target, mode="log").backward()
    outside = (target == 0)                                                            # (B, H, W)
    assert torch.all(z.grad.permute(1, 0, 2, 3)[:, outside] == 0) and z.grad[1, :, :2].abs().sum() > 0
    # no other annotated organ anywhere: 0, zero gradients, no NaN
    for mode in ("dice", "log"):
        z = logits.detach().clone().requires_grad_(True)
        out = exclusion_loss(z, torch.zeros(2, 5, 5, dtype=torch.long), mode=mode)
        out.backward()
        assert out.item() == 0.0 and torch.all(z.grad == 0)


def test_marginal_loss_ignores_how_merged_mass_is_split() -> None:
    # At a voxel labelled 0 in an image where the stomach is unknown, only p_bg + p_stomach matters.
    from weakseg.losses.partial_label import marginal_cross_entropy

    status = encode_statuses(["mask", "unknown"])[None]
    target = torch.tensor([[0]])
    a = torch.tensor([[[0.6], [0.3], [0.1]]]).log()                                  # (B=1, 3, N=1)
    b = torch.tensor([[[0.1], [0.3], [0.6]]]).log()
    torch.testing.assert_close(marginal_cross_entropy(a, target, status), marginal_cross_entropy(b, target, status))
