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
