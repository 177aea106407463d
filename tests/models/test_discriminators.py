from __future__ import annotations

import pytest
import torch
from torch import nn

from weakseg.models import MultiScaleDiscriminator
from weakseg.models.blocks import LayerNorm2d


@pytest.mark.parametrize(
    ("channels", "size", "widths", "maps"),
    [
        # §4.7 lists MNIST-48 as 6x6, 3x3, 2x2 and BraTS as 15x7, 7x3, 4x1; with its own rule (reflect pad 1,
        # 4x4 stride 2, so L -> floor(L/2)) the third scale gives 1x1 and 3x1: see the note in the report.
        (1, (48, 48), [128, 256, 512], [(6, 6), (3, 3), (1, 1)]),
        (1, (128, 128), [128, 256, 512], [(16, 16), (8, 8), (4, 4)]),
        (4, (240, 120), [64, 128, 256, 512], [(15, 7), (7, 3), (3, 1)]),
    ],
)
def test_patch_maps(channels: int, size: tuple[int, int], widths: list[int], maps: list[tuple[int, int]]) -> None:
    disc = MultiScaleDiscriminator(in_channels=channels, widths=widths, width=0.0625)
    with torch.no_grad():
        out = disc(torch.randn(2, channels, *size))
    assert [tuple(o.shape) for o in out] == [(2, 1, *m) for m in maps]


def test_layout_of_one_scale() -> None:
    disc = MultiScaleDiscriminator(in_channels=1, widths=[128, 256, 512], width=0.25, spectral_norm=False)
    assert disc.widths == [32, 64, 128]
    scale = disc.scales[0]
    assert scale[0].out_channels == 32 and scale[0].stride == (2, 2)
    assert isinstance(scale[1].norm, nn.Identity) and isinstance(scale[1].act, nn.LeakyReLU)  # first inner: no norm
    assert isinstance(scale[2].norm, LayerNorm2d)
    assert isinstance(scale[3].norm, LayerNorm2d) and scale[3].conv.kernel_size == (1, 1)
    assert scale[3].conv.out_channels == 1
    assert disc.downsample.count_include_pad is False
    assert disc.scales[0] is not disc.scales[1]


def test_batch_norm_variant_and_downsampling() -> None:
    disc = MultiScaleDiscriminator(widths=[8, 16, 32], norm="batch", spectral_norm=False)
    assert isinstance(disc.scales[0][2].norm, nn.BatchNorm2d)
    seen = []
    for net in disc.scales:
        net.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = torch.randn(2, 1, 9, 8)
    disc(x)
    pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
    torch.testing.assert_close(seen[1], pool(x))
    torch.testing.assert_close(seen[2], pool(pool(x)))
