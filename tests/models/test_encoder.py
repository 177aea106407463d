from __future__ import annotations

import pytest
import torch

from weakseg.errors import WeaksegError
from weakseg.models.encoder import Encoder, depth_for_size, encoder_channels, resolve_depth, scale_channels


@pytest.mark.parametrize(("size", "depth"), [(48, 4), ((48, 48), 4), (128, 5), ((240, 120), 5), (64, 4), (6, 1)])
def test_depth_for_size(size: int | tuple[int, int], depth: int) -> None:
    assert depth_for_size(size) == depth


def test_depth_for_size_too_small() -> None:
    with pytest.raises(WeaksegError, match="too small"):
        depth_for_size(4)


def test_resolve_depth() -> None:
    assert resolve_depth(None, None) == 4
    assert resolve_depth(None, [240, 120]) == 5
    assert resolve_depth(3, 48) == 3
    with pytest.raises(WeaksegError, match="depth <= 4"):
        resolve_depth(5, 48)


@pytest.mark.parametrize(
    ("code", "depth", "channels"),
    [(512, 4, [32, 64, 128, 256, 512]), (512, 5, [16, 32, 64, 128, 256, 512]), (128, 4, [8, 16, 32, 64, 128])],
)
def test_channel_rule(code: int, depth: int, channels: list[int]) -> None:
    assert encoder_channels(code, depth) == channels


def test_width_errors_name_the_fix() -> None:
    with pytest.raises(WeaksegError, match="choose a width"):
        scale_channels(512, 0.3)
    with pytest.raises(WeaksegError, match="not divisible"):
        encoder_channels(48, 5)


def test_mnist48_shapes_match_the_spec_table() -> None:
    # §4.2 at width 1/8: skips 32@48², 64@24², 128@12², 256@6² and code 512x3x3, all channels divided by 8.
    enc = Encoder(1, depth=4, code_channels=64)
    code, skips = enc(torch.randn(2, 1, 48, 48))
    assert code.shape == (2, 64, 3, 3)
    assert [tuple(s.shape[1:]) for s in skips] == [(4, 48, 48), (8, 24, 24), (16, 12, 12), (32, 6, 6)]
    assert code.min() >= 0  # ends with IN -> ReLU


def test_brats_shapes_match_the_spec_table() -> None:
    # §4.2 at width 1/16: 16@240x120, 32@120x60, 64@60x30, 128@30x15, 256@15x8; code 512x8x4.
    enc = Encoder(4, depth=5, code_channels=32)
    with torch.no_grad():
        code, skips = enc(torch.randn(2, 4, 240, 120))
    assert code.shape == (2, 32, 8, 4)
    assert [tuple(s.shape[1:]) for s in skips] == [(1, 240, 120), (2, 120, 60), (4, 60, 30), (8, 30, 15), (16, 15, 8)]


def test_encoder_structure() -> None:
    enc = Encoder(1, depth=4, code_channels=512)
    assert len(enc.blocks) == 4
    assert all(b.resample == "down" and b.shortcut_conv is not None for b in enc.blocks)
    assert enc.stem.in_channels == 1 and enc.stem.out_channels == 32
