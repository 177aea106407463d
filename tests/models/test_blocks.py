from __future__ import annotations

import pytest
import torch
from torch import nn

from weakseg.models.blocks import (
    ConvBlock,
    LayerNorm2d,
    LongSkipMerge,
    ReflectConv2d,
    SwitchingNorm,
    adjust_to_size,
    make_norm,
)


def test_layer_norm_hand_computed() -> None:
    # One sample, values 0..3 over (C=1, 2, 2): mean 1.5, unbiased std sqrt(5/3) = 1.2909944.
    ln = LayerNorm2d(1)
    with torch.no_grad():
        ln.gamma.fill_(2.0)
        ln.beta.fill_(0.5)
    x = torch.arange(4.0).view(1, 1, 2, 2)
    sigma = (5.0 / 3.0) ** 0.5
    expected = (torch.arange(4.0) - 1.5) / (sigma + 1e-5) * 2.0 + 0.5
    torch.testing.assert_close(ln(x).flatten(), expected)


def test_layer_norm_is_per_sample_with_per_channel_affine() -> None:
    ln = LayerNorm2d(2)
    with torch.no_grad():
        ln.gamma.copy_(torch.tensor([1.0, 3.0]))
        ln.beta.copy_(torch.tensor([0.0, -1.0]))
    # Sample 0: channel 0 all 0, channel 1 all 2; sample 1 is the same times 10.
    x = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]]])
    x = torch.cat([x, 10 * x])  # (2, 2, 2, 2)
    # Over 8 values (four 0s, four 2s): mean 1, unbiased variance 8/7.
    sigma = (8.0 / 7.0) ** 0.5
    y = ln(x)
    torch.testing.assert_close(y[0, 0], torch.full((2, 2), -1.0 / (sigma + 1e-5)))
    torch.testing.assert_close(y[0, 1], torch.full((2, 2), 3.0 / (sigma + 1e-5) - 1.0))
    torch.testing.assert_close(y[1], y[0], atol=1e-5, rtol=1e-5)  # scale-invariant per sample


def test_layer_norm_init() -> None:
    torch.manual_seed(0)
    ln = LayerNorm2d(1000)
    assert 0.0 <= ln.gamma.min() and ln.gamma.max() < 1.0 and ln.gamma.std() > 0.2
    assert torch.all(ln.beta == 0)


@pytest.mark.parametrize(
    ("size_in", "size_out", "kept_rows"),
    [
        (5, 4, [0, 1, 2, 3]),  # odd crop by 1: the last row goes
        (6, 3, [1, 2, 3]),  # crop by 3: 1 before, 2 after
        (4, 2, [1, 2]),  # even crop by 2: 1 each side
    ],
)
def test_adjust_to_size_crop(size_in: int, size_out: int, kept_rows: list[int]) -> None:
    t = torch.arange(float(size_in)).view(1, 1, size_in, 1).expand(1, 1, size_in, size_in)
    out = adjust_to_size(t, (size_out, size_out))
    assert out.shape == (1, 1, size_out, size_out)
    assert out[0, 0, :, 0].tolist() == kept_rows


@pytest.mark.parametrize(("size_in", "size_out", "before"), [(2, 3, 0), (2, 5, 1), (2, 6, 2)])
def test_adjust_to_size_pad(size_in: int, size_out: int, before: int) -> None:
    t = torch.ones(1, 1, size_in, size_in)
    out = adjust_to_size(t, (size_out, size_in))
    assert out.shape == (1, 1, size_out, size_in)
    col = out[0, 0, :, 0].tolist()
    assert col == [0.0] * before + [1.0] * size_in + [0.0] * (size_out - size_in - before)


def test_adjust_to_size_mixed_crop_and_pad() -> None:
    t = torch.arange(12.0).view(1, 1, 4, 3)
    out = adjust_to_size(t, (3, 4))  # crop rows by 1 (drop last), pad columns by 1 (after)
    assert out.shape == (1, 1, 3, 4)
    torch.testing.assert_close(out[0, 0, :, :3], t[0, 0, :3])
    assert torch.all(out[0, 0, :, 3] == 0)


def test_reflect_conv_pads_reflect_then_falls_back_to_zeros() -> None:
    conv = ReflectConv2d(1, 1, 3)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # output(i, j) = padded(i, j): the top-left neighbour
        conv.bias.zero_()
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    # pad 1 < 2: reflect; the top-left neighbour of (0, 0) is x(1, 1) = 4.
    assert conv(x)[0, 0, 0, 0].item() == 4.0
    # pad 1 >= 1: zeros; a 1x1 input sees only zeros up-left.
    assert conv(torch.ones(1, 1, 1, 1)).item() == 0.0


def test_reflect_conv_pads_small_inputs_up_to_the_kernel() -> None:
    conv = ReflectConv2d(1, 1, 4, stride=2, pad=1)
    assert conv(torch.randn(1, 1, 1, 1)).shape == (1, 1, 1, 1)
    assert conv(torch.randn(1, 1, 48, 7)).shape == (1, 1, 24, 3)


def test_reflect_conv_init_is_kaiming_normal() -> None:
    torch.manual_seed(0)
    conv = ReflectConv2d(256, 256, 3)
    fan_in = 256 * 9
    assert conv.weight.std().item() == pytest.approx((2.0 / fan_in) ** 0.5, rel=0.02)


@pytest.mark.parametrize(
    ("resample", "size", "expected"), [("down", (7, 6), (4, 3)), ("up", (3, 5), (6, 10)), (None, (5, 5), (5, 5))]
)
@pytest.mark.parametrize("shortcut", [True, False])
def test_conv_block_shapes(
    resample: str | None, size: tuple[int, int], expected: tuple[int, int], shortcut: bool
) -> None:
    block = ConvBlock(4, 6, kernel_size=3, norm="instance", resample=resample, shortcut=shortcut)
    assert block(torch.randn(2, 4, *size)).shape == (2, 6, *expected)
    assert (block.shortcut_conv is not None) == shortcut


def test_conv_block_shortcut_identity_when_channels_match() -> None:
    block = ConvBlock(4, 4, resample="down", shortcut=True)
    assert block.shortcut_conv is None
    with torch.no_grad():
        block.conv.weight.zero_()
        block.conv.bias.zero_()
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(block(x), x[:, :, ::2, ::2])  # main path is 0, shortcut decimates


@pytest.mark.parametrize(
    ("kind", "cls", "params"),
    [
        ("instance", nn.InstanceNorm2d, 0),
        ("layer", LayerNorm2d, 8),
        ("batch", nn.BatchNorm2d, 8),
        ("none", nn.Identity, 0),
    ],
)
def test_norm_factory(kind: str, cls: type, params: int) -> None:
    norm = make_norm(kind, 4)
    assert isinstance(norm, cls)
    assert sum(p.numel() for p in norm.parameters()) == params
    if kind == "instance":
        assert not norm.affine and not norm.track_running_stats
    switching = make_norm(kind, 4, num_modes=2)
    assert isinstance(switching, SwitchingNorm) and isinstance(switching.norm1, cls)
    assert sum(p.numel() for p in switching.parameters()) == 2 * params


def test_norm_factory_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        make_norm("group", 4)


def test_switching_norm_uses_the_mode() -> None:
    sw = SwitchingNorm("layer", 2)
    with torch.no_grad():
        sw.norm0.beta.fill_(1.0)
        sw.norm1.beta.fill_(-1.0)
        sw.norm0.gamma.zero_()
        sw.norm1.gamma.zero_()
    x = torch.randn(1, 2, 3, 3)
    assert torch.all(sw(x, 0) == 1.0) and torch.all(sw(x, 1) == -1.0)
    with pytest.raises(ValueError, match="mode must be 0 or 1"):
        sw(x, 2)


@pytest.mark.parametrize(("kind", "channels_out"), [("skinny_cat", 9), ("cat", 16), ("sum", 8), ("none", 8)])
def test_long_skip_merges(kind: str, channels_out: int) -> None:
    merge = LongSkipMerge(kind, 8, 8)
    assert merge.out_channels == channels_out
    x, skip = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    out = merge(x, skip)
    assert out.shape == (2, channels_out, 5, 5)
    torch.testing.assert_close(out[:, :8], x + skip if kind == "sum" else x)
    if kind == "skinny_cat":  # own compressor: IN without affine, then a 1x1 conv to one channel
        assert isinstance(merge.compress[0], nn.InstanceNorm2d) and merge.compress[1].out_channels == 1


def test_long_skip_sum_needs_equal_channels() -> None:
    with pytest.raises(ValueError, match="equal channels"):
        LongSkipMerge("sum", 8, 4)
