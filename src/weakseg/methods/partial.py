"""Training with missing organ annotations: SMILE, SMILEr's per-round training, and the baselines.

All share the backbone (the ``seg_only`` encoder-decoder with ``model.kwargs.dropout``), the data, the
sampler (pool ``all``) and the step budget; only the head, the targets and the loss differ (smile.md §7):

- ``smile``: K sigmoid outputs, weighted BCE on (Y, W) from the label statuses (``SmileLoss``);
- ``smiler`` / ``smiler_mc``: SMILE plus the pseudo-positives of the current round (the round driver
  ``weakseg.relabel.rounds.fit_smiler`` runs the rounds and hands each round's ``fit`` a training split
  that carries its pseudo-labels);
- ``naive``: softmax K+1, cross-entropy on the partial map read as nnU-Net reads it (missing organs are
  background, every slice is used, including those of volumes that lost every annotation);
- ``oracle``: softmax K+1 on the full labels (needs ``data.organs.full_labels=true``);
- ``oracle_sigmoid``: SMILE's head and loss (``smile.*``: pos_weight, Dice, normalisation) on the full labels
  (needs ``data.organs.full_labels=true``): every W is 1, so it separates the head from the masking;
- ``marginal``: softmax K+1, marginal cross-entropy + Dice with background and the missing organs merged,
  plus the exclusion loss (Shi et al., MedIA 2021; ``marginal.*``, ``weakseg.losses.partial_label``);
- ``spatial_ignore``: softmax K+1; in a volume with a missing class every background voxel is ignored for
  every class (nnU-Net's ignore label);
- ``drop_incomplete``: softmax K+1 on the volumes with every class annotated only.

Method builders that change which slices are trained on return a view of the training split
(``OrganSliceSet.materialised``/``with_status``) as ``Method.train_split``; the bundle they are given is
never changed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from weakseg.config.schema import Config
from weakseg.data.batch import Batch
from weakseg.data.registry import DataBundle
from weakseg.data.status import UNKNOWN, apply_pseudo_labels, status_targets_from_masks
from weakseg.errors import WeaksegError
from weakseg.losses.partial_label import (
    MarginalLoss,
    SmileLoss,
    ce_targets,
    cross_entropy,
    is_complete,
    softmax_dice_loss,
    spatial_ignore_targets,
)
from weakseg.methods.registry import Method, StepContext, adam, register_method
from weakseg.models.registry import create_model

SOFTMAX_METHODS = ("naive", "oracle", "spatial_ignore", "drop_incomplete", "marginal")
SIGMOID_METHODS = ("smile", "smiler", "smiler_mc", "oracle_sigmoid")


def _segmenter(cfg: Config, data: DataBundle, device: torch.device, n_out: int) -> nn.Module:
    return create_model(cfg.model.name, in_channels=data.in_channels, num_classes=n_out, width=cfg.model.width,
                        depth=cfg.model.depth, **cfg.model.kwargs).to(device)


def _organ_train_set(data: DataBundle, method: str):  # -> OrganSliceSet
    from weakseg.data.organs import OrganSliceSet
    train = data.split("train")
    if not isinstance(train, OrganSliceSet):
        raise WeaksegError(f"method {method!r} needs a multi-organ slice dataset (data.name=organs), "
                           f"got {type(train).__name__}")
    return train


# ------------------------------------------------------------------------------------------------ steps
def smile_targets(batch: Batch, pseudo: Tensor | None = None, *, propagate_negatives: bool = False
                  ) -> tuple[Tensor, Tensor]:
    """SMILE's (Y, W) of a batch from its statuses, plus pseudo-positives (SMILEr) looked up by
    ``batch.index`` in ``pseudo`` (N, K, H, W) bool. Shape: returns Y, W (B, K, H, W) float."""
    target, weight = status_targets_from_masks(batch.mask, batch.status, has_mask=batch.has_mask)
    if pseudo is not None:
        p = pseudo[batch.index.cpu()].to(batch.mask.device)                                       # (B, K, H, W)
        target, weight = apply_pseudo_labels(target, weight, p, batch.status,
                                             propagate_negatives=propagate_negatives)
    return target, weight


def make_smile_step(loss_fn: SmileLoss, pseudo: Tensor | None = None):
    """The SMILE step function, closing over its loss and the round's pseudo-labels (not run state)."""
    def smile_step(method: Method, batches: dict[str, Batch], ctx: StepContext) -> dict[str, Tensor]:
        batch = batches["all"]
        target, weight = smile_targets(batch, pseudo, propagate_negatives=ctx.cfg.smiler.propagate_negatives)
        with ctx.autocast():
            logits = method.models["segmenter"](batch.image)                                      # (B, K, H, W)
        terms = {f"loss/{k}": v for k, v in loss_fn(logits, target, weight).items()}
        ctx.update(sum(terms.values()), terms, [method.optimizers["segmenter"]])
        return {k: v.detach() for k, v in terms.items()} | {"smile/known_fraction": weight.mean().detach()}
    return smile_step


def _ce_step(targets_fn):
    def step(method: Method, batches: dict[str, Batch], ctx: StepContext) -> dict[str, Tensor]:
        batch = batches["all"]
        target = targets_fn(batch)                                                                # (B, H, W)
        with ctx.autocast():
            logits = method.models["segmenter"](batch.image)                                      # (B, K+1, H, W)
        terms = {"loss/ce": cross_entropy(logits, target, class_weight=ctx.cfg.smile.ce_weight)}
        if ctx.cfg.smile.dice_weight > 0:                  # the same overlap term SMILE gets (CE + Dice)
            terms["loss/dice"] = ctx.cfg.smile.dice_weight * softmax_dice_loss(logits, target)
        ctx.update(sum(terms.values()), terms, [method.optimizers["segmenter"]])
        return {k: v.detach() for k, v in terms.items()}
    return step


partial_ce_step = _ce_step(lambda b: ce_targets(b.mask, b.status))                 # naive, oracle, drop_incomplete
spatial_ignore_step = _ce_step(lambda b: spatial_ignore_targets(b.mask, b.status))


def make_marginal_step(loss_fn: MarginalLoss):
    """The marginal + exclusion step: integer map of the annotated organs, statuses say what is merged."""
    def marginal_step(method: Method, batches: dict[str, Batch], ctx: StepContext) -> dict[str, Tensor]:
        batch = batches["all"]
        target = ce_targets(batch.mask, batch.status)                                             # (B, H, W)
        with ctx.autocast():
            logits = method.models["segmenter"](batch.image)                                      # (B, K+1, H, W)
        terms = {f"loss/{k}": v for k, v in loss_fn(logits, target, batch.status).items()}
        ctx.update(sum(terms.values()), terms, [method.optimizers["segmenter"]])
        return {k: v.detach() for k, v in terms.items()}
    return marginal_step


# --------------------------------------------------------------------------------------------- builders
def _method(name: str, cfg: Config, data: DataBundle, device: torch.device, n_out: int, step) -> Method:
    cw = cfg.smile.ce_weight
    if name in SOFTMAX_METHODS and cw is not None and len(cw) != n_out:
        raise WeaksegError(f"smile.ce_weight has {len(cw)} values for {n_out} softmax outputs; give background "
                           "first, then one per class, or null")
    seg = _segmenter(cfg, data, device, n_out)
    return Method(name=name, models=nn.ModuleDict({"segmenter": seg}),
                  optimizers={"segmenter": adam(seg.parameters(), cfg)}, steps=(step,), streams={"all": "all"},
                  segment=seg)


def _smile_loss(cfg: Config, k: int) -> SmileLoss:
    pw = cfg.smile.pos_weight
    if pw is not None and len(pw) != k:
        raise WeaksegError(f"smile.pos_weight has {len(pw)} values for {k} classes; give one per class or null")
    if pw is not None and not all(v > 0 for v in pw):
        raise WeaksegError(f"smile.pos_weight must be positive numbers (one per class), got {list(pw)}")
    return SmileLoss(normalisation=cfg.smile.normalisation, dice_weight=cfg.smile.dice_weight, pos_weight=pw)


def _require_full_labels(name: str, cfg: Config) -> None:
    if not cfg.data.organs.full_labels:
        raise WeaksegError(f"method {name} trains on the full ground truth: set data.organs.full_labels=true "
                           "(only the oracles may; every other method must see the partial labels)")


@register_method("smile")
def build_smile(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    k = len(data.class_names)
    return _method("smile", cfg, data, device, k, make_smile_step(_smile_loss(cfg, k)))


@register_method("smiler")
@register_method("smiler_mc")
def build_smiler(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    """SMILE on (Y, W) plus the pseudo-positives the training split carries (``OrganSliceSet.pseudo_labels``,
    attached by SMILEr's round driver; none when a finished run is rebuilt for evaluation or prediction).

    The round's initial weights come from ``train.init_from``, applied by the loop.
    """
    k = len(data.class_names)
    pseudo = getattr(data.split("train"), "pseudo_labels", None)
    return _method(cfg.method, cfg, data, device, k, make_smile_step(_smile_loss(cfg, k), pseudo))


@register_method("naive")
def build_naive(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    method = _method("naive", cfg, data, device, len(data.class_names) + 1, partial_ce_step)
    method.train_split = _organ_train_set(data, "naive").materialised()
    return method


@register_method("oracle")
def build_oracle(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    _require_full_labels("oracle", cfg)
    return _method("oracle", cfg, data, device, len(data.class_names) + 1, partial_ce_step)


@register_method("oracle_sigmoid")
def build_oracle_sigmoid(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    """SMILE's K sigmoids and loss on the full labels: every class ``mask``, so every W is 1 (smile.md §7)."""
    _require_full_labels("oracle_sigmoid", cfg)
    k = len(data.class_names)
    return _method("oracle_sigmoid", cfg, data, device, k, make_smile_step(_smile_loss(cfg, k)))


@register_method("marginal")
def build_marginal(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    """Marginal + exclusion loss (Shi et al., MedIA 2021): softmax K+1 on the partial labels as annotated."""
    mc = cfg.marginal
    if not (isinstance(mc.exclusion_weight, (int, float)) and 0 <= mc.exclusion_weight < float("inf")):
        raise WeaksegError(f"marginal.exclusion_weight must be a finite number >= 0 (0 = marginal loss only), "
                           f"got {mc.exclusion_weight!r}")
    loss = MarginalLoss(class_weight=cfg.smile.ce_weight, dice_weight=cfg.smile.dice_weight,
                        exclusion_weight=mc.exclusion_weight, exclusion=mc.exclusion)
    return _method("marginal", cfg, data, device, len(data.class_names) + 1, make_marginal_step(loss))


@register_method("spatial_ignore")
def build_spatial_ignore(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    return _method("spatial_ignore", cfg, data, device, len(data.class_names) + 1, spatial_ignore_step)


@register_method("drop_incomplete")
def build_drop_incomplete(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    train = _organ_train_set(data, "drop_incomplete")
    keep = is_complete(train.status)                                                      # (N,)
    if not bool(keep.any()):
        raise WeaksegError("drop_incomplete: no training volume has every class annotated at this missing "
                           "rate; this baseline cannot run")
    # Incomplete slices become all-'unknown': the 'all' pool then skips them, and indices stay stable.
    status = torch.where(keep[:, None], train.status, torch.full_like(train.status, UNKNOWN))
    method = _method("drop_incomplete", cfg, data, device, len(data.class_names) + 1, partial_ce_step)
    method.train_split = train.with_status(status)
    return method
