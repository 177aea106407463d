"""Mean-teacher baseline (Tarvainen & Valpola 2017; ``genseg.md`` §8.3), done correctly.

The student is the seg-only network; the teacher is a deep copy at step 0 that follows it by EMA right
after each applied optimiser step (never during validation), stays in eval mode, and sees an
independently perturbed input (Gaussian noise per branch; ``mean_teacher.faithful`` restores the
reference's identical inputs). Loss: Dice on labelled P images + consistency (MSE of sigmoid outputs)
on unlabelled P images. The student is evaluated, as in the reference.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from weakseg.config.schema import Config
from weakseg.data.batch import Batch
from weakseg.data.registry import DataBundle
from weakseg.data.status import PRESENT
from weakseg.losses.labelled import labelled_dice, row_weight
from weakseg.methods.registry import Method, StepContext, adam, register_method
from weakseg.methods.seg_only import segmenter_from_config


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student, parameters and floating buffers."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.lerp_(s, 1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers()):
        if t.dtype.is_floating_point:
            t.lerp_(s, 1.0 - decay)
        else:
            t.copy_(s)


def _noisy(x: Tensor, std: float, generator: torch.Generator) -> Tensor:
    if std <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device, x.dtype)
    return x + std * noise


def mean_teacher_step(method: Method, batches: dict[str, Batch], ctx: StepContext) -> dict[str, Tensor]:
    p = batches["p"]
    mt, k = ctx.cfg.mean_teacher, ctx.cfg.data.class_index
    student, teacher = method.models["student"], method.models["teacher"]
    x_s = _noisy(p.image, mt.noise_std, ctx.generator)
    x_t = x_s if mt.faithful else _noisy(p.image, mt.noise_std, ctx.generator)
    with ctx.autocast():
        logits = student(x_s)
        with torch.no_grad():
            target = torch.sigmoid(teacher(x_t).float())
    terms: dict[str, Tensor] = {}
    dice = labelled_dice(logits, p, k)
    if dice is not None:
        terms["mt/seg_dice"] = mt.lambda_seg * dice
    if bool((p.host_flags()[0][:, k] == PRESENT).any()):                 # host copy: no device sync
        # MSE over the unlabelled rows, by a 0/1 row weight rather than boolean indexing (no sync).
        weight = row_weight(p.status[:, k] == PRESENT, logits)
        sq = (torch.sigmoid(logits.float()) - target).pow(2) * weight
        terms["mt/consistency"] = mt.lambda_con * sq.sum() / (weight.sum() * logits[0].numel())
    if not terms:
        return {}
    applied = ctx.update(sum(terms.values()), terms, [method.optimizers["student"]])
    if applied:
        ema_update(teacher, student, mt.ema_decay)
    return {key: v.detach() for key, v in terms.items()}


@register_method("mean_teacher")
def build_mean_teacher(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    student = segmenter_from_config(cfg, data, device)
    teacher = copy.deepcopy(student)
    teacher.requires_grad_(False)
    teacher.eval()
    return Method(name="mean_teacher", models=nn.ModuleDict({"student": student, "teacher": teacher}),
                  optimizers={"student": adam(student.parameters(), cfg)}, steps=(mean_teacher_step,),
                  streams={"p": "p"}, segment=student, eval_only=("teacher",))
