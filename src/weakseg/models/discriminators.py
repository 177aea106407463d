"""MUNIT-style multi-scale PatchGAN discriminator D_P / D_A (genseg.md §4.7).

Written here rather than taken from MONAI on purpose: MONAI's ``MultiScalePatchDiscriminator`` makes its
scales by stacking more layers per discriminator (``num_layers_d * (i + 1)``) on the same input, instead
of running identical nets on an average-pooled image pyramid; it also zero-pads, initialises with
``normal_init``, has no MUNIT layer norm, lets channels only double, and returns intermediate features.
Matching §4.7 (and the parameter counts of §13) needs the layout below.

One scale, widths w_0..w_L:

    conv4 s2 (in -> w0)                     no norm, no activation before
    LReLU -> conv4 s2 (w0 -> w1)            first inner layer: no norm
    norm -> LReLU -> conv4 s2 (w_i -> w_i+1)
    norm -> LReLU -> conv1x1 (w_L -> 1)     raw logits

Padding is reflect, 1 per side; inputs smaller than the kernel are padded up to it. Between scales the
image goes through ``AvgPool2d(3, stride=2, padding=1, count_include_pad=False)``.
"""

from __future__ import annotations

from torch import Tensor, nn

from weakseg.models.blocks import NormNlinConv, ReflectConv2d, add_spectral_norm
from weakseg.models.encoder import scale_channels
from weakseg.models.registry import register_model


@register_model("patchgan_multiscale")
class MultiScaleDiscriminator(nn.Module):
    """3-scale PatchGAN returning one logit map per scale.

    Args:
        in_channels: image channels.
        widths: conv widths at ``width=1`` (MNIST [128, 256, 512], the default; BraTS [64, 128, 256, 512]).
        width: multiplies every entry of ``widths``.
        norm: "layer" (MUNIT LN, default), "batch" (the BN:BN ablation), "instance" or "none".
        spectral_norm: wrap every conv (§4.6).

    Shape:
        x: (B, in_channels, H, W). Returns ``num_scales`` maps (B, 1, h_i, w_i), e.g. 6x6, 3x3, 1x1 at 48x48.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        widths: list[int] | None = None,
        width: float = 1.0,
        num_scales: int = 3,
        norm: str = "layer",
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        base = [128, 256, 512] if widths is None else list(widths)
        if len(base) < 2:
            raise ValueError(f"widths needs at least 2 entries, got {base}")
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {num_scales}")
        chans = [scale_channels(w, width, what="discriminator width") for w in base]
        self.widths = chans
        self.scales = nn.ModuleList(self._make_scale(in_channels, chans, norm) for _ in range(num_scales))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        if spectral_norm:
            add_spectral_norm(self)

    @staticmethod
    def _make_scale(in_channels: int, chans: list[int], norm: str) -> nn.Sequential:
        layers: list[nn.Module] = [ReflectConv2d(in_channels, chans[0], 4, stride=2, pad=1)]
        for i, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:])):
            layers.append(
                NormNlinConv(c_in, c_out, kernel_size=4, stride=2, norm=norm if i > 0 else "none", activation="lrelu")
            )
        layers.append(NormNlinConv(chans[-1], 1, kernel_size=1, norm=norm, activation="lrelu"))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for i, net in enumerate(self.scales):
            if i > 0:
                x = self.downsample(x)  # (B, C, ceil(H/2), ceil(W/2))
            outputs.append(net(x))
        return outputs
