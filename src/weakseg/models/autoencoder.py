"""Autoencoder baseline (genseg.md §8.1): one encoder, a reconstruction and a segmentation decoder.

``decoder_rec`` has no long skips (everything passes the bottleneck; skip sizes are still used to crop)
and a tanh output; ``decoder_seg`` has skinny_cat skips and a 1x1 classifier reading ``head_channels`` maps
(`weakseg.models.decoder.resolve_head_channels`). Both take the full code.
MNIST-48 at the published width: 4,990,957 parameters (§13).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from weakseg.models.decoder import Decoder
from weakseg.models.encoder import shared_encoder
from weakseg.models.registry import register_model
from weakseg.models.segmenter import segmentation_decoder


@dataclass
class AEOutput:
    """Outputs of `AutoEncoderSegmenter`.

    Shape:
        reconstruction: (B, C, H, W) in [-1, 1]; seg_logits: (B, K, H, W), pre-sigmoid.
    """

    reconstruction: Tensor
    seg_logits: Tensor


@register_model("ae")
class AutoEncoderSegmenter(nn.Module):
    """Shared encoder f, ``decoder_rec`` (reconstruction) and ``decoder_seg`` (segmentation).

    Shape:
        x: (B, in_channels, H, W). Returns `AEOutput`.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 1,
        depth: int | None = None,
        image_size: int | list[int] | None = None,
        width: float = 1.0,
        norm_enc: str = "instance",
        norm_dec: str = "layer",
        long_skip: str = "skinny_cat",
        dropout: float = 0.0,
        head_channels: int | str | None = "auto",
    ) -> None:
        super().__init__()
        self.encoder = shared_encoder(in_channels, depth=depth, image_size=image_size, width=width, norm=norm_enc,
                                      dropout=dropout)
        code = self.encoder.channels[-1]
        dec_channels = self.encoder.channels[:-1][::-1]
        self.decoder_rec = Decoder(
            code, in_channels, channels=dec_channels, kernel_size=3, norm=norm_dec, shortcut=True, long_skip="none",
            modes=["image"], dropout=dropout,
        )
        self.decoder_seg = segmentation_decoder(
            code, self.encoder.channels, in_channels=in_channels, num_classes=num_classes, norm=norm_dec,
            long_skip=long_skip, dropout=dropout, head_channels=head_channels,
        )

    def forward(self, x: Tensor) -> AEOutput:
        code, skips = self.encoder(x)
        return AEOutput(reconstruction=self.decoder_rec(code, skips), seg_logits=self.decoder_seg(code, skips))

    def segment(self, x: Tensor) -> Tensor:
        """Inference path encoder -> decoder_seg: logits (B, num_classes, H, W)."""
        code, skips = self.encoder(x)
        return self.decoder_seg(code, skips)
