"""The one decoder class behind g_com, g_res, the AE decoders and the sep-dec segmenter (genseg.md §4.3-4.5).

Layout for ``depth`` up-blocks with channels N/2, ..., N/2**depth:

1. up-block 1: nearest x2 -> conv k (no norm, activation or shortcut);
2. up-blocks 2..depth: `ConvBlock` (norm -> ReLU -> x2 -> conv k), shortcut if enabled;
3. after every up-block: `adjust_to_size` to the matching skip (deepest first), then the long-skip merge;
4. pre_conv: norm -> ReLU -> conv k, channels unchanged;
5. out_conv[mode]: norm -> ReLU -> conv 7x7 to the image channel count (an ``"image"`` mode) or to
   ``head_channels`` (a ``"logits"`` mode; the image channel count in the reference);
6. head of that mode: ``"image"`` -> tanh; ``"logits"`` -> 1x1 classifier to ``num_classes`` (raw logits;
   sigmoid/softmax belong to the loss and metrics).

The head width. In the reference the classifier reads the out_conv's ``in_channels`` (1 for CT and MNIST)
maps: for one class that is all it needs, but with K > 1 classes the K logits are ``a_k f(x) + b_k`` of one
scalar map f, so K independent sigmoids rise and fall together and a class whose positives lie "between"
the others in f can never be fitted (on the organ phantom, SMILE with a one-map head scored pancreas Dice 0
at every fold).
``resolve_head_channels`` turns the ``model.kwargs.head_channels`` option into a width: ``"auto"`` (default)
keeps the reference's width for one class (so genseg.md §13's parameter counts hold) and uses max(16, K)
feature maps for K > 1.

With two modes (g_res) every norm of steps 2 and 4 is a `SwitchingNorm`; the convs are shared, and each
mode owns its out_conv. Configurations used in weakseg:

============  ======  ========  =====================  ==================
decoder       kernel  shortcut  modes                  long skips
============  ======  ========  =====================  ==================
g_com         3       yes       ["image"]              skinny_cat
g_res         5       no        ["image", "logits"]    skinny_cat
AE seg, sep   3       yes       ["logits"]             skinny_cat
AE rec        3       yes       ["image"]              none (crops only)
============  ======  ========  =====================  ==================
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from weakseg.errors import WeaksegError
from weakseg.models.blocks import ConvBlock, LongSkipMerge, NormNlinConv, ReflectConv2d, adjust_to_size

HEADS = ("image", "logits")
HEAD_OPTIONS = ("auto", "image")
AUTO_HEAD_MIN = 16


def resolve_head_channels(head_channels: int | str | None, *, num_classes: int, in_channels: int) -> int:
    """Width of the feature map the 1x1 classifier reads (``model.kwargs.head_channels``).

    ``None``/``"auto"``: ``in_channels`` (the reference) for one class, max(16, K) for K > 1 classes;
    ``"image"``: ``in_channels`` whatever K (the reference's one-map bottleneck, kept only to reproduce
    results made with it; it cannot fit K > 1 independent sigmoids, see the module docstring);
    an integer >= K: that width. Anything else raises ``WeaksegError`` naming the key and the valid values.
    """
    if head_channels is None or head_channels == "auto":
        return in_channels if num_classes == 1 else max(AUTO_HEAD_MIN, num_classes)
    if head_channels == "image":
        return in_channels
    if isinstance(head_channels, bool) or not isinstance(head_channels, int):
        raise WeaksegError(f"model.kwargs.head_channels must be {', '.join(HEAD_OPTIONS)} or an integer >= "
                           f"num_classes ({num_classes}), got {head_channels!r}")
    if head_channels < num_classes:
        raise WeaksegError(f"model.kwargs.head_channels={head_channels} is narrower than the {num_classes} "
                           f"classes; use auto, image or an integer >= {num_classes}")
    return head_channels


class _UpConv(nn.Module):
    """Up-block 1: nearest x2 -> conv k; no norm, activation or shortcut."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = ReflectConv2d(in_channels, out_channels, kernel_size)

    def forward(self, x: Tensor, mode: int = 0) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Decoder(nn.Module):
    """Decoder with long skips and one output head per mode.

    Args:
        in_channels: channels of the code it decodes (c for g_com, s = [c, u] for g_res).
        out_channels: image channel count (the out_conv width of an ``"image"`` mode).
        channels: up-block widths, deepest first, e.g. [256, 128, 64, 32]; ``len(channels)`` is the depth
            and must equal the number of encoder skips. Skip i (deepest first) has ``channels[i]`` channels.
        modes: the head of each mode, ``"image"`` (tanh) or ``"logits"`` (1x1 classifier).
        num_classes: classifier outputs; required when a mode is ``"logits"``.
        head_channels: out_conv width of a ``"logits"`` mode, the classifier's input (None: ``out_channels``,
            the reference; models resolve ``model.kwargs.head_channels`` with `resolve_head_channels`).

    Shape:
        z: (B, in_channels, h, w); skips: shallow to deep, as returned by `Encoder`, only their sizes are
        used with ``long_skip="none"``. Returns (B, out_channels, H, W) in [-1, 1] for an image mode, or
        (B, num_classes, H, W) logits, with (H, W) the size of the shallowest skip.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        channels: Sequence[int],
        kernel_size: int = 3,
        norm: str = "layer",
        shortcut: bool = True,
        long_skip: str = "skinny_cat",
        modes: Sequence[str] = ("image",),
        num_classes: int | None = None,
        dropout: float = 0.0,
        head_channels: int | None = None,
    ) -> None:
        super().__init__()
        modes = list(modes)
        if not modes or len(modes) > 2 or any(m not in HEADS for m in modes):
            raise ValueError(f"modes must be a list of 1 or 2 heads from {HEADS}, got {modes}")
        if "logits" in modes and (num_classes is None or num_classes < 1):
            raise ValueError(f"a 'logits' mode needs num_classes >= 1, got {num_classes}")
        self.modes = modes
        self.depth = len(channels)
        num_modes = len(modes)
        self.blocks = nn.ModuleList()
        self.merges = nn.ModuleList()
        last = in_channels
        for i, ch in enumerate(channels):
            if i == 0:
                self.blocks.append(_UpConv(last, ch, kernel_size))
            else:
                self.blocks.append(
                    ConvBlock(last, ch, kernel_size=kernel_size, norm=norm, num_modes=num_modes, resample="up",
                              shortcut=shortcut, dropout=dropout)
                )
            merge = LongSkipMerge(long_skip, ch, ch)
            self.merges.append(merge)
            last = merge.out_channels
        self.pre_conv = NormNlinConv(last, last, kernel_size=kernel_size, norm=norm, num_modes=num_modes)
        head = out_channels if head_channels is None else int(head_channels)
        if head < 1:
            raise ValueError(f"head_channels must be >= 1, got {head_channels}")
        self.head_channels = head
        self.out_conv = nn.ModuleList(
            NormNlinConv(last, head if m == "logits" else out_channels, kernel_size=7, norm=norm) for m in modes
        )
        # PyTorch's default init for the classifier, as in the reference (§4.1).
        self.classifier = nn.Conv2d(head, num_classes, 1) if "logits" in modes else None

    def forward(self, z: Tensor, skips: Sequence[Tensor], mode: int = 0) -> Tensor:
        if not 0 <= mode < len(self.modes):
            raise ValueError(f"mode {mode} is out of range; this decoder has modes {self.modes}")
        if len(skips) != self.depth:
            raise ValueError(f"expected {self.depth} encoder skips (shallow to deep), got {len(skips)}")
        out = z
        for i, (block, merge) in enumerate(zip(self.blocks, self.merges)):
            skip = skips[self.depth - 1 - i]  # deepest first
            out = adjust_to_size(block(out, mode), skip.shape[2:])
            out = merge(out, skip)
        out = self.out_conv[mode](self.pre_conv(out, mode))
        if self.modes[mode] == "image":
            return torch.tanh(out)
        return self.classifier(out)
