"""Segmentation-only baseline (genseg.md §8.2): encoder f + the AE's segmentation decoder.

This is also the mean-teacher student (§8.3). Unlike the reference, no unused reconstruction decoder is
built. At the published MNIST-48 width it has 3,368,684 parameters (§13). ``head_channels`` sets the width
of the map the classifier reads (``weakseg.models.decoder.resolve_head_channels``): the reference's image
channel count for one class, max(16, K) for K > 1 classes by default.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from weakseg.models.decoder import Decoder, resolve_head_channels
from weakseg.models.encoder import shared_encoder
from weakseg.models.registry import register_model


def segmentation_decoder(
    code_channels: int, enc_channels: Sequence[int], *, in_channels: int, num_classes: int, norm: str,
    long_skip: str, dropout: float = 0.0, head_channels: int | str | None = "auto",
) -> Decoder:
    """The AE / seg-only / sep-dec segmentation decoder: k=3, shortcut, ``norm``, long skips, one
    "logits" mode (§7, §8.1), its classifier reading ``head_channels`` maps (`resolve_head_channels`)."""
    head = resolve_head_channels(head_channels, num_classes=num_classes, in_channels=in_channels)
    return Decoder(
        code_channels, in_channels, channels=list(enc_channels[:-1])[::-1], kernel_size=3, norm=norm,
        shortcut=True, long_skip=long_skip, modes=["logits"], num_classes=num_classes, dropout=dropout,
        head_channels=head,
    )


@register_model("seg_only")
class SegOnly(nn.Module):
    """Encoder (IN, k=3, shortcut) + segmentation decoder (k=3, shortcut, LN, skinny_cat, classifier).

    Shape:
        x: (B, in_channels, H, W). Returns logits (B, num_classes, H, W).
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
        self.decoder = segmentation_decoder(
            code, self.encoder.channels, in_channels=in_channels, num_classes=num_classes, norm=norm_dec,
            long_skip=long_skip, dropout=dropout, head_channels=head_channels,
        )

    def forward(self, x: Tensor) -> Tensor:
        code, skips = self.encoder(x)
        return self.decoder(code, skips)

    def segment(self, x: Tensor) -> Tensor:
        """Inference path, same as ``forward``: logits (B, num_classes, H, W)."""
        return self(x)
