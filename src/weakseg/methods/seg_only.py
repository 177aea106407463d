"""Segmentation-only baseline: the AE baseline's segmentation path trained on labelled P images only.

``genseg.md`` §8.2: soft batch Dice on the few masked P images; unlabelled and A images are never seen.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from weakseg.config.schema import Config
from weakseg.data.batch import Batch
from weakseg.data.registry import DataBundle
from weakseg.losses.functional import soft_dice_loss_batch
from weakseg.methods.registry import Method, StepContext, adam, register_method
from weakseg.models.registry import create_model


def supervised_step(method: Method, batches: dict[str, Batch], ctx: StepContext) -> dict[str, Tensor]:
    """One Dice update of the segmenter on a batch of labelled images."""
    batch = batches["labelled"]
    k = ctx.cfg.data.class_index
    with ctx.autocast():
        logits = method.models["segmenter"](batch.image)             # (B, K, *S)
    probs = torch.sigmoid(logits[:, k:k + 1].float())                 # (B, 1, *S)
    loss = soft_dice_loss_batch(probs, batch.mask[:, k:k + 1].float())
    ctx.update(loss, {"loss/dice": loss}, [method.optimizers["segmenter"]])
    return {"loss/dice": loss.detach()}


def segmenter_from_config(cfg: Config, data: DataBundle, device: torch.device) -> nn.Module:
    return create_model(cfg.model.name, in_channels=data.in_channels, num_classes=len(data.class_names),
                        width=cfg.model.width, depth=cfg.model.depth, **cfg.model.kwargs).to(device)


@register_method("seg_only")
def build_seg_only(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    segmenter = segmenter_from_config(cfg, data, device)
    return Method(
        name="seg_only",
        models=nn.ModuleDict({"segmenter": segmenter}),
        optimizers={"segmenter": adam(segmenter.parameters(), cfg)},
        steps=(supervised_step,),
        streams={"labelled": "labelled"},
        segment=segmenter,
    )
