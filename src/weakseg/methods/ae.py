"""Autoencoder baseline (``genseg.md`` §8.1): a shared encoder, a reconstruction decoder without long
skips and a segmentation decoder with them; L1 reconstruction of every P and A image plus Dice on the
labelled P images, one optimiser. R3 likens it to Myronenko's BraTS 2018 autoencoder regulariser.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from weakseg.config.schema import Config
from weakseg.data.batch import Batch
from weakseg.data.registry import DataBundle
from weakseg.errors import WeaksegError
from weakseg.losses.labelled import labelled_dice
from weakseg.losses.translation import l1_per_sample
from weakseg.methods.registry import Method, StepContext, adam, register_method
from weakseg.models.registry import create_model


def ae_step(method: Method, batches: dict[str, Batch], ctx: StepContext) -> dict[str, Tensor]:
    p, a = batches["p"], batches["a"]
    model = method.models["model"]
    w = ctx.cfg.ae
    x = torch.cat([p.image, a.image])                          # (2B, C, H, W): P then A
    with ctx.autocast():
        out = model(x)
    terms = {"ae/rec": w.lambda_rec * l1_per_sample(out.reconstruction, x).mean()}
    dice = labelled_dice(out.seg_logits[: len(p)], p, ctx.cfg.data.class_index)
    if dice is not None:
        terms["ae/seg_dice"] = w.lambda_seg * dice
    ctx.update(sum(terms.values()), terms, [method.optimizers["model"]])
    return {k: v.detach() for k, v in terms.items()}


@register_method("ae")
def build_ae(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    if cfg.model.name != "ae":
        raise WeaksegError(f"method ae needs model.name=ae, got {cfg.model.name!r}")
    model = create_model("ae", in_channels=data.in_channels, num_classes=len(data.class_names), width=cfg.model.width,
                         depth=cfg.model.depth, **cfg.model.kwargs).to(device)
    return Method(name="ae", models=nn.ModuleDict({"model": model}),
                  optimizers={"model": adam(model.parameters(), cfg)}, steps=(ae_step,),
                  streams={"p": "p", "a": "a"}, segment=model.segment,
                  panels=lambda x_p, x_a: {"P reconstruction": model(x_p).reconstruction})
