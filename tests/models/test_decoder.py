from __future__ import annotations

import pytest
import torch

from weakseg.models.blocks import LayerNorm2d, SwitchingNorm
from weakseg.models.decoder import Decoder
from weakseg.models.encoder import Encoder


def _g_res(long_skip: str = "skinny_cat") -> tuple[Encoder, Decoder]:
    enc = Encoder(1, depth=4, code_channels=64)
    dec = Decoder(64, 1, channels=[32, 16, 8, 4], kernel_size=5, norm="layer", shortcut=False, long_skip=long_skip,
                  modes=["image", "logits"], num_classes=1)
    return enc, dec


def _mode_params(dec: Decoder) -> tuple[set[str], set[str], set[str]]:
    """Names of (shared, mode-0-only, mode-1-only) parameters."""
    mode0, mode1, shared = set(), set(), set()
    for name, _ in dec.named_parameters():
        if ".norm0." in name or name.startswith("out_conv.0."):
            mode0.add(name)
        elif ".norm1." in name or name.startswith("out_conv.1.") or name.startswith("classifier."):
            mode1.add(name)
        else:
            shared.add(name)
    return shared, mode0, mode1


def test_modes_share_convs_and_own_norms() -> None:
    _, dec = _g_res()
    shared, mode0, mode1 = _mode_params(dec)
    switching = [m for m in dec.modules() if isinstance(m, SwitchingNorm)]
    assert len(switching) == 4  # up-blocks 2..4 and pre_conv
    for sw in switching:
        assert isinstance(sw.norm0, LayerNorm2d)
        assert sw.norm0.gamma is not sw.norm1.gamma and sw.norm0.beta is not sw.norm1.beta
    assert dec.out_conv[0] is not dec.out_conv[1]
    assert all("conv" in n or "compress" in n for n in shared)  # only convolutions are shared
    assert len(mode0) == 2 * 4 + 4  # (gamma, beta) x 4 norms; out_conv[0]: LN gamma/beta + conv w/b
    assert len(mode1) == 2 * 4 + 4 + 2  # + classifier w/b


@pytest.mark.parametrize("mode", [0, 1])
def test_a_mode_loss_reaches_only_its_own_and_shared_params(mode: int) -> None:
    enc, dec = _g_res()
    code, skips = enc(torch.randn(2, 1, 48, 48))
    dec(code, skips, mode=mode).square().mean().backward()
    shared, mode0, mode1 = _mode_params(dec)
    own, other = (mode0, mode1) if mode == 0 else (mode1, mode0)
    grads = {n: p.grad for n, p in dec.named_parameters()}
    assert all(grads[n] is None for n in other), [n for n in other if grads[n] is not None]
    assert all(grads[n] is not None for n in own | shared)
    assert all(p.grad is not None for p in enc.parameters())


def test_output_heads() -> None:
    enc, dec = _g_res()
    code, skips = enc(torch.randn(2, 1, 48, 48))
    image = dec(code, skips, mode=0)
    logits = dec(code, skips, mode=1)
    assert image.shape == logits.shape == (2, 1, 48, 48)
    assert image.abs().max() <= 1.0  # tanh
    assert logits.abs().max() > 1.0 or logits.min() < 0  # raw logits, not probabilities
    with pytest.raises(ValueError, match="mode 2 is out of range"):
        dec(code, skips, mode=2)
    with pytest.raises(ValueError, match="expected 4 encoder skips"):
        dec(code, skips[1:], mode=0)


def test_brats_shape_walk() -> None:
    # §4.3 walk at width 1/16: 32@8x4 -> 16@16x8 cropped to 15x8 (+1) -> 30x15 -> 60x30 -> 120x60 -> 240x120.
    enc = Encoder(4, depth=5, code_channels=32)
    dec = Decoder(32, 4, channels=[16, 8, 4, 2, 1], kernel_size=5, norm="layer", shortcut=False,
                  long_skip="skinny_cat", modes=["image", "logits"], num_classes=1)
    shapes = []
    for merge in dec.merges:
        merge.register_forward_hook(lambda m, args, out: shapes.append(tuple(out.shape[1:])))
    with torch.no_grad():
        code, skips = enc(torch.randn(1, 4, 240, 120))
        image = dec(code, skips, mode=0)
        logits = dec(code, skips, mode=1)
    assert shapes[:5] == [(17, 15, 8), (9, 30, 15), (5, 60, 30), (3, 120, 60), (2, 240, 120)]
    assert dec.pre_conv.conv.out_channels == 2 and dec.out_conv[0].conv.out_channels == 4
    assert image.shape == (1, 4, 240, 120) and logits.shape == (1, 1, 240, 120)
    assert dec.classifier.in_channels == 4  # mode 1 goes through the image-channel bottleneck


@pytest.mark.parametrize(("long_skip", "pre_channels"), [("skinny_cat", 5), ("cat", 8), ("sum", 4), ("none", 4)])
def test_long_skip_variants_run(long_skip: str, pre_channels: int) -> None:
    enc, dec = _g_res(long_skip)
    code, skips = enc(torch.randn(2, 1, 48, 48))
    assert dec(code, skips, mode=1).shape == (2, 1, 48, 48)
    assert dec.pre_conv.conv.in_channels == pre_channels


def test_no_long_skip_still_crops_to_skip_sizes() -> None:
    enc = Encoder(1, depth=3, code_channels=32)
    dec = Decoder(32, 1, channels=[16, 8, 4], long_skip="none")
    assert len(list(dec.merges.parameters())) == 0
    code, skips = enc(torch.randn(2, 1, 33, 17))
    assert dec(code, skips).shape == (2, 1, 33, 17)


def test_decoder_validates_heads() -> None:
    with pytest.raises(ValueError, match="needs num_classes"):
        Decoder(8, 1, channels=[4, 2], modes=["logits"])
    with pytest.raises(ValueError, match="modes must be"):
        Decoder(8, 1, channels=[4, 2], modes=["mask"])


# ---- the classifier's input width (issue 21) -------------------------------------------------------------

@pytest.mark.parametrize(("option", "k", "width"), [
    (None, 1, 1), ("auto", 1, 1), ("auto", 3, 16), ("auto", 20, 20), ("image", 3, 1), (3, 3, 3), (32, 3, 32),
])
def test_resolve_head_channels(option, k: int, width: int) -> None:
    from weakseg.models.decoder import resolve_head_channels

    assert resolve_head_channels(option, num_classes=k, in_channels=1) == width


@pytest.mark.parametrize(("option", "match"), [
    (2, "head_channels=2 is narrower than the 3 classes"), ("wide", "must be auto, image or an integer"),
    (True, "must be auto, image or an integer"), (16.0, "must be auto, image or an integer"),
])
def test_bad_head_channels_name_the_key_and_the_valid_values(option, match: str) -> None:
    from weakseg.errors import WeaksegError
    from weakseg.models import create_model

    with pytest.raises(WeaksegError, match=match) as err:
        create_model("seg_only", in_channels=1, num_classes=3, depth=2, width=0.0625, head_channels=option)
    assert "model.kwargs.head_channels" in str(err.value) and "\n" not in str(err.value)


def _intensity_toy(n: int, g: torch.Generator, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Background 0.1 and one square per class, each in its own band of rows, at intensities 0.35, 0.6 and
    0.85: class 2 lies "in the middle" of the intensity line. Shape: (n, 1, size, size), (n, size, size)."""
    img = torch.full((n, 1, size, size), 0.1)
    lab = torch.zeros(n, size, size, dtype=torch.long)
    band = size // 3
    for i in range(n):
        for b, k in enumerate(torch.randperm(3, generator=g).tolist()):
            side = int(torch.randint(5, band, (1,), generator=g))
            r0 = b * band + int(torch.randint(0, band - side + 1, (1,), generator=g))
            c0 = int(torch.randint(0, size - side + 1, (1,), generator=g))
            img[i, 0, r0:r0 + side, c0:c0 + side] = (0.35, 0.6, 0.85)[k]
            lab[i, r0:r0 + side, c0:c0 + side] = k + 1
    return img + 0.03 * torch.randn(img.shape, generator=g), lab


def test_k_sigmoid_model_learns_a_class_in_the_middle() -> None:
    # With the reference's one-map head the K logits are a_k f(x) + b_k: independent sigmoids can make each
    # class's positives a half-line of f only, so one of three ordered classes is never fitted (checked by hand
    # once: Dice 0.0 for the middle class after 300 and 1,000 steps). The default head must learn all three.
    from weakseg.data.status import encode_statuses, status_targets_from_masks
    from weakseg.evaluation.decode import decode_label_map
    from weakseg.losses.partial_label import SmileLoss
    from weakseg.models import create_model

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = create_model("seg_only", in_channels=1, num_classes=3, depth=1, width=0.0625)
    assert model.decoder.classifier.in_channels == 16
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = SmileLoss()
    status = encode_statuses(["mask"] * 3).expand(8, 3)                                # every class annotated
    for _ in range(300):
        x, lab = _intensity_toy(8, g)
        mask = torch.stack([lab == k for k in (1, 2, 3)], 1)                           # (B, K, H, W)
        target, weight = status_targets_from_masks(mask, status)
        loss = sum(loss_fn(model(x), target, weight).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, lab = _intensity_toy(16, torch.Generator().manual_seed(1234))
    with torch.no_grad():
        pred = decode_label_map(model(x).sigmoid())
    dice = [float(2 * ((pred == k) & (lab == k)).sum() / ((pred == k).sum() + (lab == k).sum())) for k in (1, 2, 3)]
    assert min(dice) > 0.9, dice
