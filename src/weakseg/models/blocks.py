"""Building blocks of the GenSeg networks (genseg.md §4.1, §4.4, §4.5, §4.6).

Conv with explicit reflect padding, the single-conv pre-activation residual block, norm -> ReLU -> conv,
centre crop/pad, the MUNIT layer norm, a norm factory (so the IN:LN / IN:IN / LN:LN / BN:BN ablations are
config), the two-mode switching norm and the long-skip merges.

Every block that holds norms takes ``forward(x, mode)``: ``mode`` picks ``norm0``/``norm1`` of a
``SwitchingNorm`` and is ignored by plain norms. The mode is always an argument, never stored state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

NORMS = ("instance", "layer", "batch", "none")
LONG_SKIPS = ("skinny_cat", "cat", "sum", "none")


class ReflectConv2d(nn.Conv2d):
    """``Conv2d`` with bias, explicit padding and ``kaiming_normal_`` weights (§4.1).

    Padding is ``pad`` per side in reflect mode, falling back to zeros when ``pad`` is >= a spatial size
    (reflect padding is undefined there). An input still smaller than the kernel after padding is
    zero-padded up to the kernel size (the discriminator's 4x4 kernels on tiny maps, §4.7). Biases keep
    PyTorch's default init.

    Shape:
        x: (B, C_in, H, W). Returns (B, C_out, H', W').
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        pad: int | None = None,
        kaiming: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=True)
        self.pad = (kernel_size - 1) // 2 if pad is None else pad
        if kaiming:
            nn.init.kaiming_normal_(self.weight)

    def forward(self, x: Tensor) -> Tensor:
        if self.pad > 0:
            reflect = all(self.pad < s for s in x.shape[2:])
            x = F.pad(x, [self.pad] * (2 * (x.dim() - 2)), mode="reflect" if reflect else "constant")
        short = [max(0, k - s) for k, s in zip(self.kernel_size, x.shape[2:])]
        if any(short):
            pads: list[int] = []
            for d in reversed(short):  # F.pad lists the last axis first
                pads += [d // 2, d - d // 2]
            x = F.pad(x, pads)
        return super().forward(x)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", pad={self.pad} (reflect)"


class LayerNorm2d(nn.Module):
    """MUNIT-style layer norm (§4.1): per sample, over all of (C, H, W).

    ``y = (x - mu) / (sigma + eps) * gamma_c + beta_c`` with the **unbiased** std and eps added to sigma.
    Written by hand because neither ``nn.LayerNorm`` nor ``GroupNorm(1, C)`` matches (they use the biased
    variance and put eps under the square root). gamma starts U[0, 1), beta at 0.

    Shape:
        x: (B, C, *S). Returns the same shape.
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.gamma = nn.Parameter(torch.empty(num_features).uniform_())
        self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)  # (B, C*H*W)
        stat_shape = [-1] + [1] * (x.dim() - 1)  # (B, 1, 1, 1)
        mu = flat.mean(1).view(stat_shape)
        sigma = flat.std(1).view(stat_shape)  # unbiased
        y = (x - mu) / (sigma + self.eps)
        affine_shape = [1, -1] + [1] * (x.dim() - 2)  # (1, C, 1, 1)
        return y * self.gamma.view(affine_shape) + self.beta.view(affine_shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class SwitchingNorm(nn.Module):
    """Two independent norms of one type, ``norm0`` and ``norm1``; ``mode`` picks one (§4.4).

    Shape:
        x: (B, C, H, W). Returns the same shape.
    """

    def __init__(self, kind: str, num_features: int) -> None:
        super().__init__()
        self.norm0 = make_norm(kind, num_features)
        self.norm1 = make_norm(kind, num_features)

    def forward(self, x: Tensor, mode: int) -> Tensor:
        if mode == 0:
            return self.norm0(x)
        if mode == 1:
            return self.norm1(x)
        raise ValueError(f"SwitchingNorm mode must be 0 or 1, got {mode}")


def make_norm(kind: str, num_features: int, *, num_modes: int = 1) -> nn.Module:
    """Norm layer by name: ``instance`` (``nn.InstanceNorm2d`` defaults: no affine, no running stats),
    ``layer`` (`LayerNorm2d`), ``batch`` (``nn.BatchNorm2d``) or ``none``. ``num_modes=2`` gives a
    `SwitchingNorm` of two such layers."""
    if kind not in NORMS:
        raise ValueError(f"unknown norm {kind!r}; use one of {', '.join(NORMS)}")
    if num_modes == 2:
        return SwitchingNorm(kind, num_features)
    if num_modes != 1:
        raise ValueError(f"num_modes must be 1 or 2, got {num_modes}")
    if kind == "instance":
        return nn.InstanceNorm2d(num_features)
    if kind == "layer":
        return LayerNorm2d(num_features)
    if kind == "batch":
        return nn.BatchNorm2d(num_features)
    return nn.Identity()


def apply_norm(norm: nn.Module, x: Tensor, mode: int) -> Tensor:
    """Run ``norm`` on ``x``, passing ``mode`` only to a `SwitchingNorm`."""
    if isinstance(norm, SwitchingNorm):
        return norm(x, mode)
    return norm(x)


def adjust_to_size(t: Tensor, size: Sequence[int]) -> Tensor:
    """Centre-crop or zero-pad the spatial axes of ``t`` to ``size`` (§4.1).

    With an odd difference d, a crop removes floor(d/2) before and the rest after (so a crop by 1 removes
    the last row/column), and a pad puts floor(d/2) before and the rest after.

    Shape:
        t: (B, C, *S). Returns (B, C, *size).
    """
    spatial = t.shape[2:]
    if len(size) != len(spatial):
        raise ValueError(f"size {tuple(size)} has {len(size)} axes but the tensor has {len(spatial)} spatial axes")
    slices = [slice(None), slice(None)]
    pads: list[int] = []
    for cur, target in zip(spatial, size):
        d = cur - target
        slices.append(slice(d // 2, d // 2 + target) if d > 0 else slice(None))
    t = t[tuple(slices)]
    for cur, target in zip(reversed(t.shape[2:]), reversed(list(size))):  # F.pad lists the last axis first
        d = max(0, target - cur)
        pads += [d // 2, d - d // 2]
    if any(pads):
        t = F.pad(t, pads)
    return t


def _crop_to_common(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    size = [min(x, y) for x, y in zip(a.shape[2:], b.shape[2:])]
    return adjust_to_size(a, size), adjust_to_size(b, size)


def _activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "lrelu":
        return nn.LeakyReLU(0.2)
    raise ValueError(f"unknown activation {kind!r}; use 'relu' or 'lrelu'")


class NormNlinConv(nn.Module):
    """norm -> activation -> conv, no shortcut (§4.1).

    Shape:
        x: (B, C_in, H, W). Returns (B, C_out, H', W') (H' = ceil(H/2) at stride 2 and odd kernel).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        norm: str,
        num_modes: int = 1,
        stride: int = 1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.norm = make_norm(norm, in_channels, num_modes=num_modes)
        self.act = _activation(activation)
        self.conv = ReflectConv2d(in_channels, out_channels, kernel_size, stride=stride)

    def forward(self, x: Tensor, mode: int = 0) -> Tensor:
        return self.conv(self.act(apply_norm(self.norm, x, mode)))


class ConvBlock(nn.Module):
    """Single-conv pre-activation residual block (``conv_block`` of §4.1).

    Main path: norm -> ReLU -> [nearest x2] -> conv k (stride 2 for ``resample="down"``) -> [dropout].
    Shortcut (optional): input -> [decimate ``x[..., ::2, ::2]`` | nearest x2] -> [1x1 conv when the
    channel count changes]. Both paths are centre-cropped to a common size, then summed.

    Shape:
        x: (B, C_in, H, W). Returns (B, C_out, ceil(H/2), ceil(W/2)) for "down", (B, C_out, 2H, 2W) for
        "up", (B, C_out, H, W) otherwise.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        norm: str = "instance",
        num_modes: int = 1,
        resample: Literal["down", "up"] | None = None,
        shortcut: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if resample not in ("down", "up", None):
            raise ValueError(f"resample must be 'down', 'up' or None, got {resample!r}")
        self.resample = resample
        self.norm = make_norm(norm, in_channels, num_modes=num_modes)
        self.act = nn.ReLU()
        self.conv = ReflectConv2d(in_channels, out_channels, kernel_size, stride=2 if resample == "down" else 1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = shortcut
        self.shortcut_conv = (
            ReflectConv2d(in_channels, out_channels, 1) if shortcut and in_channels != out_channels else None
        )

    def forward(self, x: Tensor, mode: int = 0) -> Tensor:
        out = self.act(apply_norm(self.norm, x, mode))
        if self.resample == "up":
            out = F.interpolate(out, scale_factor=2, mode="nearest")
        out = self.dropout(self.conv(out))
        if not self.shortcut:
            return out
        short = x
        if self.resample == "down":
            short = short[:, :, ::2, ::2]
        elif self.resample == "up":
            short = F.interpolate(short, scale_factor=2, mode="nearest")
        if self.shortcut_conv is not None:
            short = self.shortcut_conv(short)
        out, short = _crop_to_common(out, short)
        return out + short


class LongSkipMerge(nn.Module):
    """Merge of an encoder skip into decoder features (§4.5).

    ``skinny_cat``: own compressor IN (no affine) -> 1x1 conv to one channel, concatenated (+1 channel);
    ``cat``: concatenate the full skip (channels x2); ``sum``: add the skip (channels must match);
    ``none``: no merge.

    Shape:
        x: (B, C, H, W), skip: (B, C_skip, H, W). Returns (B, out_channels, H, W).
    """

    def __init__(self, kind: str, channels: int, skip_channels: int) -> None:
        super().__init__()
        if kind not in LONG_SKIPS:
            raise ValueError(f"unknown long_skip {kind!r}; use one of {', '.join(LONG_SKIPS)}")
        if kind == "sum" and channels != skip_channels:
            raise ValueError(f"long_skip 'sum' needs equal channels, got decoder {channels} and skip {skip_channels}")
        self.kind = kind
        self.compress = (
            nn.Sequential(nn.InstanceNorm2d(skip_channels), ReflectConv2d(skip_channels, 1, 1))
            if kind == "skinny_cat"
            else None
        )
        extra = {"skinny_cat": 1, "cat": skip_channels, "sum": 0, "none": 0}[kind]
        self.out_channels = channels + extra

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        if self.kind == "skinny_cat":
            return torch.cat([x, self.compress(skip)], dim=1)
        if self.kind == "cat":
            return torch.cat([x, skip], dim=1)
        if self.kind == "sum":
            return x + skip
        return x


def add_spectral_norm(module: nn.Module, *, exclude: Iterable[nn.Module] = ()) -> int:
    """Wrap every ``Conv2d`` weight in ``module`` with spectral norm (1 power iteration), except the convs
    inside ``exclude``. Returns the number of convs wrapped (§4.6).

    Uses ``torch.nn.utils.parametrizations.spectral_norm``; its power iteration updates buffers under
    ``no_grad`` and works on clones, so calling the same network several times per forward is safe.
    """
    skipped = {id(m) for ex in exclude for m in ex.modules()}
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d) and id(m) not in skipped]
    for conv in convs:
        if not parametrize.is_parametrized(conv, "weight"):
            spectral_norm(conv)
    return len(convs)


def count_spectral_norm(module: nn.Module) -> int:
    """Number of ``Conv2d`` in ``module`` whose weight carries a spectral-norm parametrization."""
    return sum(
        1
        for m in module.modules()
        if isinstance(m, nn.Conv2d)
        and parametrize.is_parametrized(m, "weight")
        and any(type(p).__name__ == "_SpectralNorm" for p in m.parametrizations.weight)
    )
