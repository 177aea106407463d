"""Surface distances (HD95, ASSD) in millimetres, with weakseg's empty-case policy.

The distances themselves come from MONAI (``compute_hausdorff_distance`` with ``percentile=95``, the
symmetric form: the larger of the two directed 95th percentiles; ``compute_average_surface_distance``
with ``symmetric=True``). We call MONAI **only when both masks are non-empty**: MONAI returns NaN (dropped
from its means) for a missed structure or a false alarm, and its empty handling is still changing
(``ecosystem.md`` §7.1, Project-MONAI/MONAI#9095/#9096). The empty cases are decided here, by the policy:
missed / false alarm -> the volume diagonal in mm (or NaN), both empty -> NaN (excluded) or 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Required, TypedDict, Unpack

import numpy as np
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
from torch import Tensor

from weakseg.metrics.counts import _as_bool
from weakseg.metrics.policy import EmptyCasePolicy


def volume_diagonal_mm(shape: Sequence[int], spacing: Sequence[float] | None = None) -> float:
    """Diagonal of the image extent in mm, sqrt(sum (n_i * s_i)^2): the worst surface distance.

    240 x 240 x 155 voxels at 1 mm give 373.13 mm.
    """
    spacing = [1.0] * len(shape) if spacing is None else [float(s) for s in spacing]
    if len(spacing) != len(shape):
        raise ValueError(f"spacing has {len(spacing)} values but the image has {len(shape)} spatial axes")
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True)))


def _check_spacing(spacing: Sequence[float] | None, ndim: int) -> list[float]:
    if spacing is None:
        return [1.0] * ndim
    out = [float(s) for s in np.asarray(spacing, dtype=np.float64).reshape(-1)]
    if len(out) != ndim:
        raise ValueError(f"spacing must have one value per spatial axis ({ndim}), got {len(out)}: {out}")
    if not all(s > 0 and math.isfinite(s) for s in out):
        raise ValueError(f"spacing values must be positive and finite, got {out}")
    return out


class SurfaceOptions(TypedDict, total=False):
    """The keyword options of ``hd95`` and ``assd``."""

    spacing: Required[Sequence[float] | None]   # mm per spatial axis, in the array's order (None: 1 mm, voxels)
    policy: EmptyCasePolicy | None               # empty cases (None: ``EmptyCasePolicy()``)


def _surface_metric(
    pred: Tensor | np.ndarray,
    ref: Tensor | np.ndarray,
    monai_fn: Callable[[Tensor, Tensor, list[float]], Tensor],
    *,
    spacing: Sequence[float] | None,
    policy: EmptyCasePolicy | None = None,
) -> Tensor:
    policy = policy or EmptyCasePolicy()
    pred_t = torch.as_tensor(pred).detach().cpu()  # MONAI's distance transforms run through scipy on CPU
    ref_t = torch.as_tensor(ref).detach().cpu()
    if pred_t.shape != ref_t.shape:
        raise ValueError(f"pred and ref must have the same shape (B, K, *S), got {tuple(pred_t.shape)} and "
                         f"{tuple(ref_t.shape)}")
    if pred_t.ndim not in (4, 5):
        raise ValueError(f"expected (B, K, H, W) or (B, K, X, Y, Z), got shape {tuple(pred_t.shape)}")
    p = _as_bool(pred_t, "pred")
    r = _as_bool(ref_t, "ref")
    spatial = tuple(p.shape[2:])
    sp = _check_spacing(spacing, len(spatial))
    worst = volume_diagonal_mm(spatial, sp) if policy.hd_one_empty == "diagonal" else float("nan")
    both_empty = float("nan") if policy.hd_both_empty == "exclude" else 0.0

    p_any = p.flatten(2).any(-1)  # (B, K)
    r_any = r.flatten(2).any(-1)  # (B, K)
    out = torch.empty(p.shape[:2], dtype=torch.float64)
    for b, k in np.ndindex(*p.shape[:2]):
        if p_any[b, k] and r_any[b, k]:
            pk = p[b : b + 1, k : k + 1].float()  # (1, 1, *S)
            rk = r[b : b + 1, k : k + 1].float()
            with warnings.catch_warnings():
                # MONAI 1.6 passes its own deprecated `always_return_as_numpy` internally; not ours to fix.
                warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
                out[b, k] = float(monai_fn(pk, rk, sp)[0, 0])
        elif p_any[b, k] or r_any[b, k]:
            out[b, k] = worst  # missed structure or false alarm
        else:
            out[b, k] = both_empty
    return out


def hd95(pred: Tensor | np.ndarray, ref: Tensor | np.ndarray, **options: Unpack[SurfaceOptions]) -> Tensor:
    """95th-percentile symmetric Hausdorff distance in mm per case and class (MONAI), empty cases by policy.

    ``spacing`` is one value per spatial axis, in the array's axis order (None: 1 mm, i.e. voxels).

    Shape:
        pred, ref: (B, K, H, W) or (B, K, X, Y, Z), bool or 0/1. Returns (B, K) float64.
    """
    return _surface_metric(
        pred, ref,
        lambda p, r, sp: compute_hausdorff_distance(p, r, include_background=True, percentile=95, spacing=sp),
        **options,
    )


def assd(pred: Tensor | np.ndarray, ref: Tensor | np.ndarray, **options: Unpack[SurfaceOptions]) -> Tensor:
    """Average symmetric surface distance in mm per case and class (MONAI), same empty-case rules as ``hd95``.

    Shape:
        pred, ref: (B, K, H, W) or (B, K, X, Y, Z), bool or 0/1. Returns (B, K) float64.
    """
    return _surface_metric(
        pred, ref,
        lambda p, r, sp: compute_average_surface_distance(p, r, include_background=True, symmetric=True, spacing=sp),
        **options,
    )
