"""GenSeg: segmentation from presence/absence translation (Vorontsov et al., MIA 2022; ``genseg.md``).

One iteration (§6): the generator forward runs once; the discriminators are updated on detached fakes;
then the generator (and the separate segmenter, "sep dec") is updated against the just-updated
discriminators, which are frozen during that backward. Batches are unpaired: B P images + B A images,
masks only on the labelled P images (usually none at 1%: the Dice term is then absent).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from weakseg.config.schema import Config
from weakseg.data.batch import Batch
from weakseg.data.registry import DataBundle
from weakseg.data.datasets import SampleSet
from weakseg.data.samplers import pool_indices
from weakseg.losses.labelled import labelled_dice
from weakseg.losses.translation import discriminator_terms, generator_terms
from weakseg.metrics.translation import TranslationHealth, disc_accuracy, image_scores
from weakseg.methods.registry import Method, StepContext, adam, register_method
from weakseg.models.registry import create_model


def genseg_step(method: Method, batches: dict[str, Batch], ctx: StepContext) -> dict[str, Tensor]:
    cfg, k = ctx.cfg, ctx.cfg.data.class_index
    p, a = batches["p"], batches["a"]
    gen = method.models["generator"]
    d_p = method.models["disc_p"] if "disc_p" in method.models else None
    d_a = method.models["disc_a"] if "disc_a" in method.models else None
    logs: dict[str, Tensor] = {}

    with ctx.autocast():
        out = gen(p.image, a.image, generator=ctx.generator)

    if d_a is not None:                                    # 1. discriminators, on detached fakes
        for d in (d_p, d_a):
            if d is not None:
                d.requires_grad_(True)
        with ctx.autocast():
            d_terms = discriminator_terms(d_p, d_a, x_p=p.image, x_a=a.image, x_pa=out.x_PA, x_ap=out.x_AP)
        ctx.update(sum(d_terms.values()), d_terms, [method.optimizers["discriminators"]])
        logs |= {k_: v.detach() for k_, v in d_terms.items()}
        for d in (d_p, d_a):                               # frozen for the generator backward
            if d is not None:
                d.requires_grad_(False)

    g = cfg.genseg                                          # 2. generator against the updated discriminators
    with ctx.autocast():
        terms = generator_terms(out, x_p=p.image, x_a=a.image, d_p=d_p, d_a=d_a, lambda_adv=g.lambda_adv,
                                lambda_rec=g.lambda_rec, lambda_cyc=g.lambda_cyc, lambda_lat=g.lambda_lat)
    dice = labelled_dice(out.seg_logits, p, k)
    if dice is not None:
        terms["gen/seg_dice"] = g.lambda_seg * dice
        logs["dice_loss"] = dice.detach()
    opts = [method.optimizers["generator"]] + ([method.optimizers["segmenter"]] if "segmenter" in method.optimizers else [])
    ctx.update(sum(terms.values()), terms, opts)
    logs |= {k_: v.detach() for k_, v in terms.items()}
    return logs


def translation_diagnostic(gen: nn.Module, d_p: nn.Module | None, d_a: nn.Module | None, *, regions: bool):
    """``Method.diagnose`` of GenSeg: translation health of the validation split (``metrics.translation``).

    ``regions``: the P->A residual on the object vs the clutter (its region rule assumes a dark background
    with bright objects and clutter: cluttered MNIST). Discriminator accuracies always: D_A on real A images
    vs x_PA, D_P on real P images vs x_AP (its code noise from a generator of its own, seed 0, so the
    training's random streams are untouched).
    """
    def diagnose(data: SampleSet, cfg: Config, device: torch.device) -> dict[str, Any]:
        k, bs = cfg.data.class_index, cfg.eval.batch_size
        p_idx = pool_indices(data, "labelled", class_index=k)
        a_idx = pool_indices(data, "a", class_index=k)
        health = TranslationHealth()
        scores: dict[str, list[Tensor]] = {"a_real": [], "a_fake": [], "p_real": [], "p_fake": []}
        noise = None
        for start in range(0, max(len(p_idx), len(a_idx)), bs):
            if start < len(p_idx):
                b = data.batch(p_idx[start:start + bs]).to(device)
                x_pa, _ = gen.translate_p_to_a(b.image)
                if regions:
                    health.update(b.image, x_pa, b.mask[:, k:k + 1])
                if d_a is not None:
                    scores["a_fake"].append(image_scores(d_a(x_pa)))
                if d_p is not None:
                    scores["p_real"].append(image_scores(d_p(b.image)))
            if start < len(a_idx):
                b = data.batch(a_idx[start:start + bs]).to(device)
                if d_a is not None:
                    scores["a_real"].append(image_scores(d_a(b.image)))
                if d_p is not None:
                    if noise is None:
                        noise = torch.Generator(device=b.image.device).manual_seed(0)
                    scores["p_fake"].append(image_scores(d_p(gen.translate_a_to_p(b.image, generator=noise))))
        out = health.compute() if regions else {}
        for d in ("a", "p"):
            if scores[f"{d}_real"] and scores[f"{d}_fake"]:
                acc = disc_accuracy(torch.cat(scores[f"{d}_real"]), torch.cat(scores[f"{d}_fake"]))
                out[f"disc_{d}_real_acc"], out[f"disc_{d}_fake_acc"] = acc["real"], acc["fake"]
        return out
    return diagnose


def _panels(gen: nn.Module):
    def panels(x_p: Tensor, x_a: Tensor) -> dict[str, Tensor]:
        x_pa, delta = gen.translate_p_to_a(x_p)
        out = {"P->A": x_pa, "P residual": delta}
        if gen.translation == "bidirectional":
            out["A->P"] = gen.translate_a_to_p(x_a)
        return out
    return panels


@register_method("genseg")
def build_genseg(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    kwargs = dict(cfg.model.kwargs)
    if cfg.model.name != "genseg":
        raise_model = cfg.model.name
        from weakseg.errors import WeaksegError
        raise WeaksegError(f"method genseg needs model.name=genseg, got {raise_model!r}")
    disc_kwargs = kwargs.pop("discriminator", {}) or {}
    gen = create_model("genseg", in_channels=data.in_channels, num_classes=len(data.class_names),
                       width=cfg.model.width, depth=cfg.model.depth, **kwargs).to(device)
    models = nn.ModuleDict({"generator": gen})
    if gen.translation != "none":
        models["disc_a"] = create_model("patchgan_multiscale", in_channels=data.in_channels, width=cfg.model.width,
                                        **disc_kwargs).to(device)
        if gen.translation == "bidirectional":
            models["disc_p"] = create_model("patchgan_multiscale", in_channels=data.in_channels,
                                            width=cfg.model.width, **disc_kwargs).to(device)
    groups = gen.parameter_groups()
    optimizers = {"generator": adam(groups["generator"], cfg)}
    if "segmenter" in groups:
        optimizers["segmenter"] = adam(groups["segmenter"], cfg)
    if "disc_a" in models:
        d_params = [p_ for name in ("disc_p", "disc_a") if name in models for p_ in models[name].parameters()]
        optimizers["discriminators"] = adam(d_params, cfg, lr=cfg.train.lr_discriminator)
    diagnose = translation_diagnostic(gen, models["disc_p"] if "disc_p" in models else None,
                                      models["disc_a"] if "disc_a" in models else None,
                                      regions=cfg.data.name == "mnist")
    return Method(name="genseg", models=models, optimizers=optimizers, steps=(genseg_step,),
                  streams={"p": "p", "a": "a"}, segment=gen.segment, panels=_panels(gen), diagnose=diagnose)
