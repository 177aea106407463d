"""Encoder f and the channel rule (genseg.md §4.2).

A stem conv, then ``depth`` stride-2 `ConvBlock`s, then norm -> ReLU. A skip is the input of each
stride-2 block (the map just before each resolution change). Over K = depth + 1 stages the channels double
from N / 2**depth up to N, with N = round(512 * width) the code channel count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from weakseg.errors import WeaksegError
from weakseg.models.blocks import ConvBlock, ReflectConv2d, make_norm

BASE_CODE_CHANNELS = 512
BASE_UNIQUE_CHANNELS = 128


def scale_channels(base: int, width: float, *, what: str = "channel count") -> int:
    """``base * width`` as an exact positive integer, or a `WeaksegError` naming a fix."""
    value = base * width
    if value < 1 or abs(value - round(value)) > 1e-6:
        raise WeaksegError(
            f"width={width} gives a {what} of {value} from {base}; choose a width whose product with {base} is a "
            "positive integer (e.g. 1.0, 0.5, 0.25, 0.125)"
        )
    return int(round(value))


def encoder_channels(code_channels: int, depth: int) -> list[int]:
    """Channels of the stem and of each stride-2 stage: N / 2**depth, ..., N / 2, N (§4.2).

    Example: N = 512, depth = 4 (MNIST-48) gives [32, 64, 128, 256, 512].
    """
    if depth < 1:
        raise WeaksegError(f"depth must be >= 1 (number of stride-2 stages), got {depth}")
    if code_channels % 2**depth:
        raise WeaksegError(
            f"code channels {code_channels} are not divisible by 2**depth = {2**depth}; raise width or lower depth"
        )
    return [code_channels // 2 ** (depth - i) for i in range(depth + 1)]


def depth_for_size(size: int | Sequence[int], *, min_code_size: int = 3) -> int:
    """Number of stride-2 stages for an input size: the most stages that leave the smaller side of the
    code at least ``min_code_size`` (each stage maps L to ceil(L/2)).

    Gives 4 for 48x48 (code 3x3), 5 for 128x128 (4x4) and 5 for BraTS 240x120 (8x4), as in §4.2.
    """
    side = min(size) if isinstance(size, Sequence) else int(size)
    if side < min_code_size:
        raise WeaksegError(f"image size {size} is smaller than the minimum code size {min_code_size}")
    depth = 0
    while math.ceil(side / 2) >= min_code_size:
        side = math.ceil(side / 2)
        depth += 1
    if depth == 0:
        raise WeaksegError(f"image size {size} is too small for one stride-2 stage; use at least {2 * min_code_size}")
    return depth


class Encoder(nn.Module):
    """Encoder f: stem conv 3x3 -> ``depth`` x stride-2 `ConvBlock` -> norm -> ReLU (§4.2).

    Shape:
        x: (B, in_channels, H, W). Returns ``(code, skips)``: code (B, N, h, w) with h = H halved (ceil)
        ``depth`` times; skips is a list of ``depth`` maps, shallow to deep, skip i being
        (B, channels[i], H_i, W_i) with H_0 = H.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        depth: int,
        code_channels: int = BASE_CODE_CHANNELS,
        kernel_size: int = 3,
        norm: str = "instance",
        shortcut: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.channels = encoder_channels(code_channels, depth)
        self.depth = depth
        self.stem = ReflectConv2d(in_channels, self.channels[0], 3)
        self.blocks = nn.ModuleList(
            ConvBlock(c_in, c_out, kernel_size=kernel_size, norm=norm, resample="down", shortcut=shortcut,
                      dropout=dropout)
            for c_in, c_out in zip(self.channels[:-1], self.channels[1:])
        )
        self.out_norm = make_norm(norm, code_channels)
        self.out_act = nn.ReLU()

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        out = self.stem(x)
        skips: list[Tensor] = []
        for block in self.blocks:
            skips.append(out)
            out = block(out)
        return self.out_act(self.out_norm(out)), skips


def resolve_depth(depth: int | None, image_size: int | Sequence[int] | None) -> int:
    """``depth`` if given, else `depth_for_size` of ``image_size``, else 4 (the MNIST-48 network)."""
    if depth is not None:
        if image_size is not None and depth_for_size(image_size) < depth:
            raise WeaksegError(
                f"depth={depth} halves image_size={image_size} below a 3-pixel code; use depth <= "
                f"{depth_for_size(image_size)} or leave depth unset"
            )
        return int(depth)
    if image_size is not None:
        return depth_for_size(image_size)
    return 4


def shared_encoder(in_channels: int, *, depth: int | None, image_size: int | Sequence[int] | None, width: float,
                   norm: str, dropout: float = 0.0) -> Encoder:
    """Encoder f as the registered networks build it: ``BASE_CODE_CHANNELS`` scaled by ``width`` (its last
    entry of ``channels``), as deep as ``depth`` or, unset, as ``image_size`` allows (`resolve_depth`)."""
    code = scale_channels(BASE_CODE_CHANNELS, width, what="code channel count")
    return Encoder(in_channels, depth=resolve_depth(depth, image_size), code_channels=code, norm=norm,
                   dropout=dropout)
