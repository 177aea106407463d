"""GenSeg losses: hinge adversarial terms, reconstruction, cycle and latent L1 (``genseg.md`` §5).

Vorontsov et al., MIA 2022. Generator and discriminator losses are kept apart: ``discriminator_terms``
only sees detached fakes, ``generator_terms`` returns the weighted generator terms by name. Every
function works on logits lists from a multi-scale discriminator (one (B, 1, h, w) map per scale).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def l1_per_sample(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference over all non-batch elements. Shape: a, b (B, ...) -> (B,)."""
    return (a.float() - b.float()).abs().flatten(1).mean(1)


def patch_mean(logits: Sequence[Tensor]) -> Tensor:
    """D̄(x): each scale's logit map averaged over patches, then over scales. Returns (B,)."""
    return torch.stack([m.float().flatten(1).mean(1) for m in logits]).mean(0)


def hinge_discriminator(real: Sequence[Tensor], fake: Sequence[Tensor]) -> Tensor:
    """mean_batch[ mean(relu(1 - D(real))) + mean(relu(1 + D(fake))) ], inner means over patches then scales.

    With D ≡ 0 this is 2. Shape: lists of (B, 1, h_s, w_s) -> scalar.
    """
    r = torch.stack([F.relu(1 - m.float()).flatten(1).mean(1) for m in real]).mean(0)   # (B,)
    f = torch.stack([F.relu(1 + m.float()).flatten(1).mean(1) for m in fake]).mean(0)   # (B,)
    return (r + f).mean()


def hinge_generator(fake: Sequence[Tensor]) -> Tensor:
    """Per-sample generator hinge term -D̄(fake). Returns (B,); 0 when D ≡ 0."""
    return -patch_mean(fake)


def discriminator_terms(d_p: Callable[[Tensor], list[Tensor]] | None, d_a: Callable[[Tensor], list[Tensor]],
                        *, x_p: Tensor, x_a: Tensor, x_pa: Tensor, x_ap: Tensor | None) -> dict[str, Tensor]:
    """D_A: real x_A vs fake x_PA; D_P: real P images vs fake x_AP (fakes detached here)."""
    terms = {"disc/a": hinge_discriminator(d_a(x_a), d_a(x_pa.detach()))}
    if d_p is not None and x_ap is not None:
        terms["disc/p"] = hinge_discriminator(d_p(x_p), d_p(x_ap.detach()))
    return terms


def generator_terms(out: object, *, x_p: Tensor, x_a: Tensor, d_p: Callable[[Tensor], list[Tensor]] | None,
                    d_a: Callable[[Tensor], list[Tensor]] | None, lambda_adv: float, lambda_rec: float,
                    lambda_cyc: float, lambda_lat: float) -> dict[str, Tensor]:
    """Weighted translation terms of the generator, each already averaged over the batch.

    ``out`` is a ``TranslationOutput``. Terms of the A->P branch appear only when it ran; the cycle is
    added only when ``lambda_rec != 0`` (as the reference). Latent targets are not detached (§5).
    """
    terms: dict[str, Tensor] = {}
    has_ap = getattr(out, "x_AP", None) is not None
    if lambda_adv and d_a is not None:
        adv = hinge_generator(d_a(out.x_PA))
        if has_ap and d_p is not None:
            adv = adv + hinge_generator(d_p(out.x_AP))
        terms["gen/adv"] = lambda_adv * adv.mean()
    if lambda_rec:
        terms["gen/rec"] = lambda_rec * (l1_per_sample(out.x_PP, x_p) + l1_per_sample(out.x_AA, x_a)).mean()
        if has_ap and lambda_cyc:
            terms["gen/cyc"] = lambda_cyc * l1_per_sample(out.x_APA, x_a).mean()
    if lambda_lat:
        lat = l1_per_sample(out.c_PA, out.c_P) + l1_per_sample(out.s_PP, out.s_P) + l1_per_sample(out.c_AA, out.c_A)
        if has_ap:
            lat = lat + l1_per_sample(out.s_AP, out.z_AP)
        terms["gen/lat"] = lambda_lat * lat.mean()
    return terms
