"""Scoring of multi-organ slice sets: decoded slice predictions stacked into volumes, per-organ 3D Dice and HD95.

The scores come from ``weakseg.metrics.summary.score_cases``, the code ``weakseg score`` runs on NIfTI
folders, so validation, ``weakseg evaluate`` and ``weakseg score`` agree to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from weakseg.data.organs import OrganSliceSet
from weakseg.data.status import STATUSES
from weakseg.evaluation.decode import decode_logits, decode_pos_weight
from weakseg.losses.partial_label import ce_targets
from weakseg.metrics.summary import score_cases


@torch.no_grad()
def predict_label_maps(segment: Any, data: OrganSliceSet, *, device: torch.device, batch_size: int = 64,
                       threshold: float = 0.5, pos_weight: Sequence[float] | None = None) -> Tensor:
    """Decoded slice predictions: K+1 output channels are read as a softmax head (argmax), K channels as
    K sigmoids (``decode_label_map``: argmax over classes above ``threshold``), on sigmoid(z - log pos_weight)
    when ``pos_weight`` is given (``weakseg.evaluation.decode``).

    Shape:
        returns (N, H, W) int64 class ids 0..K.
    """
    k = len(data.class_names)
    out = []
    for start in range(0, len(data), batch_size):
        x = data.images[start:start + batch_size].to(device)
        out.append(decode_logits(segment(x).float(), k, threshold=threshold, pos_weight=pos_weight).cpu())
    return torch.cat(out)


def score_slice_set(pred: Tensor, data: OrganSliceSet) -> dict[str, Any]:
    """Per-organ 3D Dice per volume (``score_cases``) from stacked slice predictions.

    The reference is the full ground truth on the test split and the visible masks elsewhere; classes
    whose evaluation status is ``unknown``/``present`` are not scored.
    """
    classes = data.class_names
    ref_map = ce_targets(data.truth if data.score_truth else data.masks)          # (N, H, W)
    cases = []
    for v in data.volumes:
        rows = slice(v["start"], v["start"] + v["depth"])
        st = {c: ("unknown" if s == "present" else s)
              for c, s in zip(classes, _words(data.eval_status[v["start"]]), strict=True)}
        cases.append((v["case_id"], pred[rows].numpy(), ref_map[rows].numpy(), v["spacing"], st))
    labels = {"background": 0, **{c: i for i, c in enumerate(classes, start=1)}}
    return score_cases(cases, labels=labels)


def _words(codes: Tensor) -> list[str]:
    return [STATUSES[int(c)] for c in codes.tolist()]


def evaluate_organs(segment: Any, data: OrganSliceSet, cfg: Any, device: torch.device) -> dict[str, Any]:
    """The organs metrics: ``mean_dice`` (mean over organs of the per-volume mean Dice, the selection
    metric), ``dice_<class>``, ``hd95_<class>`` and the per-volume Dice table ``per_case``. Sigmoid outputs
    are decoded as ``smile.calibrate_pos_weight`` says."""
    pred = predict_label_maps(segment, data, device=device, batch_size=cfg.eval.batch_size,
                              threshold=cfg.eval.threshold, pos_weight=decode_pos_weight(cfg))
    summary = score_slice_set(pred, data)
    out: dict[str, Any] = {"mean_dice": summary["foreground_mean"]["Dice"]}
    for i, c in enumerate(data.class_names, start=1):
        out[f"dice_{c}"] = summary["mean"][str(i)]["Dice"]
        out[f"hd95_{c}"] = summary["mean"][str(i)]["HD95"]
    out["per_case"] = {pc["case_id"]: {c: pc["metrics"][str(i)]["Dice"] for i, c in enumerate(data.class_names, 1)}
                       for pc in summary["metric_per_case"]}
    out["n_volumes"] = len(data.volumes)
    return out
