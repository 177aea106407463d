"""GenSeg generator: presence/absence translation with a residual decoder that also segments.

Vorontsov et al., *Towards annotation-efficient segmentation via image-to-image translation*, Medical
Image Analysis 2022 (arXiv:1904.01636). Spec: genseg.md §3 (data flow), §4 (architecture), §7 (variants).

The code s = f(x) (N channels) is split along channels into a common part c (N - n) and a unique part u
(n). g_com(c) decodes an A-looking image; g_res(s) decodes the residual that re-adds the pathology
(mode 0) or, with its second set of norms and output head, the segmentation logits (mode 1).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from weakseg.errors import WeaksegError
from weakseg.models.blocks import add_spectral_norm
from weakseg.models.decoder import Decoder, resolve_head_channels
from weakseg.models.encoder import (BASE_CODE_CHANNELS, BASE_UNIQUE_CHANNELS, resolve_depth, scale_channels,
                                    shared_encoder)
from weakseg.models.registry import register_model
from weakseg.models.segmenter import segmentation_decoder

TRANSLATIONS = ("bidirectional", "p_to_a_only", "none")
SEGMENTERS = ("shared", "separate")


@dataclass
class TranslationOutput:
    """Every tensor of one GenSeg forward pass (genseg.md §2-§3). P = presence, A = absence.

    Fields of the A->P branch (``u_noise`` ... ``x_APA``) are None unless ``translation="bidirectional"``.

    Shape (B images per domain, C image channels, K classes, N code channels, n unique channels):
        images x_*, delta_*: (B, C, H, W); x_PA, x_AA, x_APA, delta_* in [-1, 1]; the sums x_PP and x_AP
        are not squashed again and lie in [-2, 2].
        codes s_*: (B, N, h, w); c_*: (B, N - n, h, w) (all N channels with ``latent_split=False``);
        u_*, u_noise: (B, n, h, w); z_AP = [c_A, u_noise]: (B, N, h, w).
        seg_logits: (B, K, H, W), pre-sigmoid, for every P image (the loss picks the labelled ones).
    """

    s_P: Tensor
    c_P: Tensor
    u_P: Tensor
    s_A: Tensor
    c_A: Tensor
    u_A: Tensor
    x_PA: Tensor
    delta_P: Tensor
    x_PP: Tensor
    x_AA: Tensor
    seg_logits: Tensor
    s_PP: Tensor
    c_PA: Tensor
    c_AA: Tensor
    u_noise: Tensor | None = None
    z_AP: Tensor | None = None
    delta_AP: Tensor | None = None
    x_AP: Tensor | None = None
    s_AP: Tensor | None = None
    c_AP: Tensor | None = None
    u_AP: Tensor | None = None
    x_APA: Tensor | None = None

    def tensors(self) -> dict[str, Tensor]:
        """The fields that are set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@register_model("genseg")
class GenSegGenerator(nn.Module):
    """Encoder f, common decoder g_com, residual decoder g_res (+ a separate segmenter for "sep dec").

    Args:
        in_channels, num_classes: image channels and segmentation classes.
        depth / image_size: number of stride-2 stages (4 for 48x48, 5 for 128x128 and BraTS 240x120), or an
            image size to derive it from (`depth_for_size`).
        width: multiplies every channel count: N = 512 * width code channels, n = 128 * width unique ones.
        unique_channels: overrides n.
        translation: "bidirectional" (full model), "p_to_a_only" or "none" (§7): the last two skip the A->P
            branch (x_AP, its re-encoding and the cycle); their difference lies in the losses.
        segmenter: "shared" (g_res in mode 1) or "separate" (a third decoder; g_res then has one mode).
        long_skip: "skinny_cat" | "cat" | "sum" | "none" (§4.5).
        norm_enc, norm_dec: "instance" | "layer" | "batch" | "none"; IN:LN is the default.
        latent_split: with False, g_com decodes the whole code s (c = s); the A->P residual still gets
            [s_A[:, :N-n], u_noise] so that translation keeps its noise input (our reading of §7).
        spectral_norm: wrap every conv of f, g_com and g_res except g_res's out_conv[1] and classifier
            (§4.6); never the separate segmenter.
        res_kernel_size, res_shortcut: g_res kernel and shortcut (5, False in the headline model; 3, True
            in the ``bds3_104`` variant).
        head_channels: width of the map the segmentation classifier reads (g_res's mode-1 out_conv, or the
            separate segmenter's): ``auto`` keeps the reference's image width for one class and uses
            max(16, K) maps for K > 1 (`weakseg.models.decoder.resolve_head_channels`).
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        num_classes: int = 1,
        depth: int | None = None,
        image_size: int | list[int] | None = None,
        width: float = 1.0,
        unique_channels: int | None = None,
        translation: str = "bidirectional",
        segmenter: str = "shared",
        long_skip: str = "skinny_cat",
        norm_enc: str = "instance",
        norm_dec: str = "layer",
        latent_split: bool = True,
        spectral_norm: bool = True,
        res_kernel_size: int = 5,
        res_shortcut: bool = False,
        head_channels: int | str | None = "auto",
    ) -> None:
        super().__init__()
        if translation not in TRANSLATIONS:
            raise WeaksegError(f"unknown translation {translation!r}; use one of {', '.join(TRANSLATIONS)}")
        if segmenter not in SEGMENTERS:
            raise WeaksegError(f"unknown segmenter {segmenter!r}; use one of {', '.join(SEGMENTERS)}")
        depth = resolve_depth(depth, image_size)
        code = scale_channels(BASE_CODE_CHANNELS, width, what="code channel count")
        unique = unique_channels if unique_channels is not None else scale_channels(
            BASE_UNIQUE_CHANNELS, width, what="unique channel count"
        )
        if not 0 < unique < code:
            raise WeaksegError(f"unique_channels must be in (0, {code}) for {code} code channels, got {unique}")
        self.translation = translation
        self.segmenter = segmenter
        self.latent_split = latent_split
        self.code_channels = code
        self.unique_channels = unique

        self.encoder = shared_encoder(in_channels, depth=depth, image_size=image_size, width=width, norm=norm_enc)
        dec_channels = self.encoder.channels[:-1][::-1]
        self.g_com = Decoder(
            code - unique if latent_split else code, in_channels, channels=dec_channels, kernel_size=3, norm=norm_dec,
            shortcut=True, long_skip=long_skip, modes=["image"],
        )
        shared = segmenter == "shared"
        head = resolve_head_channels(head_channels, num_classes=num_classes, in_channels=in_channels)
        self.g_res = Decoder(
            code, in_channels, channels=dec_channels, kernel_size=res_kernel_size, norm=norm_dec,
            shortcut=res_shortcut, long_skip=long_skip, modes=["image", "logits"] if shared else ["image"],
            num_classes=num_classes if shared else None, head_channels=head if shared else None,
        )
        self.seg_decoder = None if shared else segmentation_decoder(
            code, self.encoder.channels, in_channels=in_channels, num_classes=num_classes, norm=norm_dec,
            long_skip=long_skip, head_channels=head_channels,
        )
        if spectral_norm:
            add_spectral_norm(self.encoder)
            add_spectral_norm(self.g_com)
            # The segmentation head stays unconstrained (§4.6: SN removed from out_conv[1] and classifier).
            add_spectral_norm(self.g_res, exclude=[self.g_res.out_conv[1], self.g_res.classifier] if shared else [])

    # -- pieces ------------------------------------------------------------------------------------------

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """s, K = f(x). Shape: x (B, C, H, W) -> s (B, N, h, w), skips shallow to deep."""
        return self.encoder(x)

    def split(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """(c, u): c = s[:, :N-n] (all of s with ``latent_split=False``), u = s[:, N-n:]."""
        common = self.code_channels - self.unique_channels
        c = s[:, :common] if self.latent_split else s
        return c, s[:, common:]

    def sample_unique(self, s: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """u_noise ~ N(0, I) of shape (B, n, h, w) at the code's size, from ``generator`` or the global RNG."""
        shape = (s.shape[0], self.unique_channels, *s.shape[2:])
        device = generator.device if generator is not None else s.device
        return torch.randn(shape, generator=generator, device=device).to(device=s.device, dtype=s.dtype)

    def segment_code(self, s: Tensor, skips: list[Tensor]) -> Tensor:
        """Segmentation logits from a code: g_res mode 1, or the separate segmenter."""
        if self.seg_decoder is not None:
            return self.seg_decoder(s, skips)
        return self.g_res(s, skips, mode=1)

    def segment(self, x: Tensor) -> Tensor:
        """Inference: logits = g_res(f(x), K_x, mode=1) (or the separate decoder); deterministic.

        Shape: x (B, C, H, W) -> (B, K, H, W).
        """
        s, skips = self.encode(x)
        return self.segment_code(s, skips)

    def translate_p_to_a(self, x_p: Tensor) -> tuple[Tensor, Tensor]:
        """P->A: returns (x_PA, delta_P), with x_PA + delta_P the reconstruction x_PP."""
        s, skips = self.encode(x_p)
        return self.g_com(self.split(s)[0], skips), self.g_res(s, skips, mode=0)

    def translate_a_to_p(
        self, x_a: Tensor, *, u_noise: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """A->P: x_AP = g_com(c_A) + g_res([c_A, u_noise]) with u_noise ~ N(0, I) unless given."""
        s, skips = self.encode(x_a)
        x_aa = self.g_com(self.split(s)[0], skips)
        z = self._z_ap(s, self._noise(s, u_noise, generator))
        return x_aa + self.g_res(z, skips, mode=0)

    def _noise(self, s: Tensor, u_noise: Tensor | None, generator: torch.Generator | None) -> Tensor:
        if u_noise is None:
            return self.sample_unique(s, generator=generator)
        expected = (s.shape[0], self.unique_channels, *s.shape[2:])
        if tuple(u_noise.shape) != expected:
            raise ValueError(f"u_noise must have shape {expected} (B, n, h, w), got {tuple(u_noise.shape)}")
        return u_noise

    def _z_ap(self, s_a: Tensor, u_noise: Tensor) -> Tensor:
        return torch.cat([s_a[:, : self.code_channels - self.unique_channels], u_noise], dim=1)  # (B, N, h, w)

    # -- the training forward pass ----------------------------------------------------------------------

    def forward(
        self,
        x_p: Tensor,
        x_a: Tensor,
        *,
        u_noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> TranslationOutput:
        """The 7 steps of genseg.md §3. Each translation uses the skips of its own input image.

        Shape:
            x_p, x_a: (B, C, H, W); u_noise: (B, n, h, w) or None to draw it. Returns `TranslationOutput`.
        """
        # 1-2. Encode and split.
        s_p, k_p = self.encode(x_p)
        s_a, k_a = self.encode(x_a)
        c_p, u_p = self.split(s_p)
        c_a, u_a = self.split(s_a)
        # 3. P->A and reconstruction of x_P.
        delta_p = self.g_res(s_p, k_p, mode=0)
        x_pa = self.g_com(c_p, k_p)
        x_pp = x_pa + delta_p
        # 4. Segmentation of every P image.
        seg = self.segment_code(s_p, k_p)
        # 5. Reconstruction of x_A, and A->P.
        x_aa = self.g_com(c_a, k_a)
        out = {}
        if self.translation == "bidirectional":
            noise = self._noise(s_a, u_noise, generator)
            z_ap = self._z_ap(s_a, noise)
            delta_ap = self.g_res(z_ap, k_a, mode=0)
            x_ap = x_aa + delta_ap
            # 6-7. Re-encode x_AP; cycle through its own skips.
            s_ap, k_ap = self.encode(x_ap)
            c_ap, u_ap = self.split(s_ap)
            x_apa = self.g_com(c_ap, k_ap)
            out = dict(u_noise=noise, z_AP=z_ap, delta_AP=delta_ap, x_AP=x_ap, s_AP=s_ap, c_AP=c_ap, u_AP=u_ap,
                       x_APA=x_apa)
        # 6. Re-encode the other translations.
        s_pp = self.encode(x_pp)[0]
        c_pa = self.split(self.encode(x_pa)[0])[0]
        c_aa = self.split(self.encode(x_aa)[0])[0]
        return TranslationOutput(
            s_P=s_p, c_P=c_p, u_P=u_p, s_A=s_a, c_A=c_a, u_A=u_a, x_PA=x_pa, delta_P=delta_p, x_PP=x_pp, x_AA=x_aa,
            seg_logits=seg, s_PP=s_pp, c_PA=c_pa, c_AA=c_aa, **out,
        )

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimizer: "generator" (f, g_com, g_res) and, for the separate segmenter,
        "segmenter" (its own optimizer S, §7)."""
        groups = {
            "generator": [*self.encoder.parameters(), *self.g_com.parameters(), *self.g_res.parameters()],
        }
        if self.seg_decoder is not None:
            groups["segmenter"] = list(self.seg_decoder.parameters())
        return groups
