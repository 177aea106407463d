"""Label status per (case, class): the one description both method families read.

Every (case, class) pair carries exactly one status (``smile.md`` §15):

- ``mask``: annotated, a voxel mask is given (it may be empty);
- ``present``: known present, no mask (a GenSeg "P" image without a mask);
- ``absent``: known absent, every pixel is a negative for the class (a GenSeg "A" image);
- ``unknown``: not annotated, nothing is known.

In tensors statuses are small integer codes (``STATUS_CODES``) so batches carry them as ``(B, K)``
int8 tensors instead of Python lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from weakseg.errors import WeaksegError

Status = Literal["mask", "present", "absent", "unknown"]
STATUSES: tuple[Status, ...] = ("mask", "present", "absent", "unknown")
STATUS_CODES: dict[str, int] = {name: code for code, name in enumerate(STATUSES)}
MASK, PRESENT, ABSENT, UNKNOWN = (STATUS_CODES[s] for s in STATUSES)


def status_code(name: str, *, where: str = "status") -> int:
    """Integer code of a status word; raises naming ``where`` and the valid words."""
    if name not in STATUS_CODES:
        raise WeaksegError(f"{where}: unknown label status {name!r}; use one of {', '.join(STATUSES)}")
    return STATUS_CODES[name]


def encode_statuses(names: Iterable[str], *, where: str = "status") -> Tensor:
    """Status words -> int8 codes. Shape: returns (K,)."""
    return torch.tensor([status_code(n, where=where) for n in names], dtype=torch.int8)


# --------------------------------------------------------------------------------------------------
# SMILE targets and weights (smile.md §4)
# --------------------------------------------------------------------------------------------------

#: statuses under which a class counts as annotated in a case (A_v in smile.md §2.1)
ANNOTATED_CODES: tuple[int, ...] = (MASK, ABSENT)
#: statuses under which a class is missing in a case: SMILEr relabels these (smile.md §8.2)
MISSING_CODES: tuple[int, ...] = (PRESENT, UNKNOWN)


def is_missing(status: Tensor) -> Tensor:
    """Where a class is missing (``present`` or ``unknown``): the one test SMILE, SMILEr and the baselines use.

    Shape:
        status: any shape of status codes (e.g. (B, K)); returns a bool tensor of the same shape and device.
    """
    return torch.isin(status, torch.tensor(MISSING_CODES, dtype=status.dtype, device=status.device))


def _as_codes(status: Tensor | Sequence[str] | Sequence[Sequence[str]]) -> Tensor:
    """Status words or codes -> int64 code tensor (K,) or (B, K)."""
    if isinstance(status, Tensor):
        return status.long()
    items = list(status)
    if items and not isinstance(items[0], str):
        return torch.stack([encode_statuses(row) for row in items]).long()  # (B, K)
    return encode_statuses(items).long()  # (K,)


def status_targets_from_masks(
    mask: Tensor,
    status: Tensor | Sequence[str] | Sequence[Sequence[str]],
    *,
    has_mask: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Per-class SMILE targets ``Y`` and weights ``W`` from a binary mask stack and statuses.

    Rule (smile.md §4.1, §15.1): ``mask`` -> Y = mask, W = 1; ``absent`` -> Y = 0, W = 1; ``unknown`` and
    ``present`` -> Y = 0, W = 1 exactly on voxels of *another* ``mask`` class, 0 elsewhere. Voxels of a
    class whose status is not ``mask`` never reach Y (leak guard), whatever the mask holds there.

    Args:
        has_mask: optional (B,) bool, as in ``Batch.has_mask``; a ``mask`` class in a sample without a
            mask is inconsistent and raises.

    Shape:
        mask: (K, *S) or (B, K, *S), any dtype, nonzero = inside; status: (K,) or (B, K) codes (or words).
        Returns Y, W with the shape of ``mask``.
    """
    codes = _as_codes(status).to(mask.device)
    batched = codes.ndim == 2
    k_axis = 1 if batched else 0
    if mask.ndim < k_axis + 1 or tuple(mask.shape[: k_axis + 1]) != tuple(codes.shape):
        raise ValueError(f"status_targets_from_masks: mask {tuple(mask.shape)} does not start with the status "
                         f"shape {tuple(codes.shape)}; pass mask (K, *S) with status (K,) or (B, K, *S) with (B, K)")
    view = (*codes.shape, *[1] * (mask.ndim - codes.ndim))  # (K, 1...) or (B, K, 1...)
    is_mask = (codes == MASK).view(view)
    if has_mask is not None:
        if not batched or has_mask.shape != codes.shape[:1]:
            raise ValueError(f"has_mask {tuple(has_mask.shape)} needs batched status (B, K) with B = "
                             f"{has_mask.shape[0] if has_mask.ndim else '?'}")
        bad = (codes == MASK) & ~has_mask.to(codes.device).bool()[:, None]  # (B, K)
        if bool(bad.any()):
            b, k = (int(i) for i in bad.nonzero()[0])
            raise ValueError(f"sample {b}: class {k} has status 'mask' but the sample carries no mask; "
                             "give the mask or mark the class 'unknown'")
    onehot = (mask != 0) & is_mask                                    # leak guard: non-mask voxels dropped
    n_pos = onehot.sum(k_axis, keepdim=True, dtype=torch.int16)       # (K->1) how many mask classes cover x
    other = (n_pos - onehot.to(torch.int16)) > 0                      # voxel of another mask class
    full = ((codes == MASK) | (codes == ABSENT)).view(view)           # annotated: W = 1 everywhere
    weight = full | other                                             # missing: W = 1 on other organs only
    return onehot.to(dtype), weight.to(dtype)


def status_targets(
    label: Tensor,
    status: Tensor | Sequence[str] | Sequence[Sequence[str]],
    *,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Per-class SMILE targets ``Y`` and weights ``W`` from an integer label map (smile.md §4.2).

    Label value k (1..K) marks class k, 0 background. The table of ``status_targets_from_masks`` applies;
    values of classes that are not ``mask`` are treated as background (they never reach Y).

    Shape:
        label: (*S) with status (K,), or (B, *S) with status (B, K); int, values 0..K.
        Returns Y, W: (K, *S) or (B, K, *S).
    """
    codes = _as_codes(status).to(label.device)
    if label.is_floating_point():
        raise ValueError(f"status_targets: label must be an integer map, got {label.dtype}")
    k = codes.shape[-1]
    if label.numel() and (int(label.min()) < 0 or int(label.max()) > k):
        raise ValueError(f"status_targets: label values must be in 0..{k} (K = {k} statuses), got "
                         f"{int(label.min())}..{int(label.max())}; remap the labels or pass one status per class")
    batched = codes.ndim == 2
    if batched and label.shape[0] != codes.shape[0]:
        raise ValueError(f"status_targets: label batch {label.shape[0]} != status batch {codes.shape[0]}")
    k_axis = 1 if batched else 0
    k_ids = torch.arange(1, k + 1, device=label.device)
    shape = [1] * (label.ndim + 1)
    shape[k_axis] = k
    onehot = label.unsqueeze(k_axis) == k_ids.view(shape)             # (K, *S) or (B, K, *S)
    return status_targets_from_masks(onehot, codes, dtype=dtype)


def apply_pseudo_labels(
    target0: Tensor,
    weight0: Tensor,
    pseudo: Tensor,
    status: Tensor,
    *,
    propagate_negatives: bool = False,
) -> tuple[Tensor, Tensor]:
    """Training targets after relabelling: Y = Y⁰ ∪ P, W = W⁰ ∪ P (original labels never altered).

    ``propagate_negatives``: a pseudo-positive of k is also a known negative (W = 1, Y = 0) for every other
    missing class j of the image that has no pseudo-positive there (the weight rule re-applied).

    Shape:
        target0, weight0, pseudo: (N, K, *S); status: (N, K) codes. Returns Y, W like target0.
    """
    if not target0.shape == weight0.shape == pseudo.shape:
        raise ValueError(f"apply_pseudo_labels: shapes differ: {tuple(target0.shape)}, {tuple(weight0.shape)}, "
                         f"{tuple(pseudo.shape)}")
    p = pseudo.bool()
    target = torch.where(p, torch.ones_like(target0), target0)
    weight = torch.where(p, torch.ones_like(weight0), weight0)
    if propagate_negatives:
        view = (*status.shape, *[1] * (pseudo.ndim - 2))
        missing = is_missing(status.to(p.device)).view(view)
        n_pos = p.sum(1, keepdim=True)                                           # (N, 1, *S)
        other = (n_pos - p.long()) > 0                                           # a pseudo-positive of another class
        neg = other & ~p & missing & (weight0 == 0)                              # never touch original labels
        weight = torch.where(neg, torch.ones_like(weight), weight)
        target = torch.where(neg, torch.zeros_like(target), target)
    return target, weight


def label_usage(target: Tensor, weight: Tensor, truth: Tensor, *, normalise: bool = True) -> dict[str, Tensor]:
    """How the labels a method trains on relate to the full ground truth (smile.md §2.3, §17.4).

    Keys (per class): ``pos_as_pos``, ``pos_as_neg`` (wrong), ``pos_ignored``, ``neg_as_neg``,
    ``neg_as_pos`` (wrong), ``neg_ignored``, and ``wrong`` = ``pos_as_neg + neg_as_pos``. "pos"/"neg" refer
    to the truth, "as ..." to what the method uses (W > 0, Y). The naive softmax baseline corresponds to
    W = 1 everywhere with Y the partial one-hot map.

    Args:
        normalise: fractions of all voxels (as in the §2.3 table) instead of voxel counts.

    Shape:
        target, weight, truth: (B, K, *S); nonzero = positive / known. Returns (K,) tensors.
    """
    if not target.shape == weight.shape == truth.shape:
        raise ValueError(f"label_usage: shapes differ: target {tuple(target.shape)}, weight "
                         f"{tuple(weight.shape)}, truth {tuple(truth.shape)}")
    if target.ndim < 3:
        raise ValueError(f"label_usage: expected (B, K, *S) tensors, got {tuple(target.shape)}; add a batch axis")
    k = target.shape[1]
    flat = [t.movedim(1, 0).reshape(k, -1) != 0 for t in (target, weight, truth)]  # (K, B*N) each
    y, w, g = flat
    counts = {
        "pos_as_pos": g & w & y,
        "pos_as_neg": g & w & ~y,
        "pos_ignored": g & ~w,
        "neg_as_neg": ~g & w & ~y,
        "neg_as_pos": ~g & w & y,
        "neg_ignored": ~g & ~w,
    }
    out = {name: m.sum(1) for name, m in counts.items()}               # (K,) int64
    out["wrong"] = out["pos_as_neg"] + out["neg_as_pos"]
    if normalise:
        n = max(y.shape[1], 1)
        out = {name: v.double() / n for name, v in out.items()}
    return out


# --------------------------------------------------------------------------------------------------
# Resolution of the `weakseg` block of dataset.json (smile.md §15.3-15.5, ecosystem.md §4.3)
# --------------------------------------------------------------------------------------------------

_BLOCK_KEYS = ("format", "default_status", "sources", "cases")
_CASE_KEYS = ("source", "status")
_OVERLAY_KEYS = ("format", "cases", "simulation")


def _check_keys(obj: object, allowed: Sequence[str], where: str) -> Mapping[str, object]:
    if not isinstance(obj, Mapping):
        raise WeaksegError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    extra = [key for key in obj if key not in allowed]
    if extra:
        raise WeaksegError(f"{where}: unknown key {extra[0]!r}; valid keys: {', '.join(allowed)}")
    return obj


def _check_status_map(obj: object, class_names: Sequence[str], where: str) -> dict[str, Status]:
    if not isinstance(obj, Mapping):
        raise WeaksegError(f"{where}: expected an object {{class: status}}, got {type(obj).__name__}")
    out: dict[str, Status] = {}
    for cls, word in obj.items():
        if cls not in class_names:
            raise WeaksegError(f"{where}.{cls}: unknown class {cls!r}; classes are {', '.join(class_names)} "
                               "(the names of dataset.json `labels`, background excluded)")
        status_code(word, where=f"{where}.{cls}")
        out[cls] = word
    return out


def resolve_statuses(
    weakseg_block: Mapping[str, object] | None,
    case_ids: Sequence[str],
    class_names: Sequence[str],
    *,
    overlay: Mapping[str, object] | None = None,
    where: str = "dataset.json: weakseg",
) -> dict[str, dict[str, Status]]:
    """Resolve the status of every (case, class) pair.

    Order (smile.md §15.3): per-case ``status`` > the case's ``source`` (its annotated classes -> ``mask``,
    the others -> ``unknown``) > ``default_status`` > ``mask``; an overlay (``cases`` schema, e.g. from
    ``weakseg.data.simulate``) is applied last. With no block every pair is ``mask``.

    Args:
        weakseg_block: the ``weakseg`` object of ``dataset.json``, or None.
        case_ids: the cases to resolve (every case named in the block or overlay must be among them).
        class_names: canonical foreground classes, in label order (background excluded).

    Raises ``WeaksegError`` naming the case and class for bad status words, unknown classes, undeclared
    sources, unknown keys, and cases not in ``case_ids``.
    """
    class_names = list(class_names)
    if "background" in class_names:
        raise WeaksegError(f"{where}: class_names must exclude 'background' (it has no status)")
    known_cases = set(case_ids)
    block = _check_keys(weakseg_block if weakseg_block is not None else {}, _BLOCK_KEYS, where)
    if block.get("format", 1) != 1:
        raise WeaksegError(f"{where}.format: unsupported format {block['format']!r}; this weakseg reads format 1")
    default = block.get("default_status", "mask")
    status_code(str(default), where=f"{where}.default_status")

    sources: dict[str, set[str]] = {}
    raw_sources = block.get("sources", {})
    if not isinstance(raw_sources, Mapping):
        raise WeaksegError(f"{where}.sources: expected an object {{source: {{'annotated': [...]}}}}")
    for name, spec in raw_sources.items():
        spec = _check_keys(spec, ("annotated",), f"{where}.sources.{name}")
        annotated = spec.get("annotated")
        if annotated == "all":
            sources[name] = set(class_names)
            continue
        if not isinstance(annotated, list) or not all(isinstance(c, str) for c in annotated):
            raise WeaksegError(f"{where}.sources.{name}.annotated: give a list of class names or \"all\"")
        for cls in annotated:
            if cls not in class_names:
                raise WeaksegError(f"{where}.sources.{name}.annotated: unknown class {cls!r}; classes are "
                                   f"{', '.join(class_names)}")
        sources[name] = set(annotated)

    resolved: dict[str, dict[str, Status]] = {case: {cls: default for cls in class_names} for case in case_ids}
    raw_cases = block.get("cases", {})
    if not isinstance(raw_cases, Mapping):
        raise WeaksegError(f"{where}.cases: expected an object {{case_id: {{...}}}}")
    for case, entry in raw_cases.items():
        here = f"{where}.cases.{case}"
        entry = _check_keys(entry, _CASE_KEYS, here)
        if case not in known_cases:
            raise WeaksegError(f"{here}: case {case!r} is not in the dataset; fix the id or remove the entry")
        if "source" in entry:
            src = entry["source"]
            if src not in sources:
                declared = ", ".join(sources) or "none"
                raise WeaksegError(f"{here}.source: source {src!r} is not declared in {where}.sources "
                                   f"(declared: {declared})")
            for cls in class_names:
                resolved[case][cls] = "mask" if cls in sources[src] else "unknown"
        resolved[case].update(_check_status_map(entry.get("status", {}), class_names, f"{here}.status"))

    if overlay is not None:
        ov = _check_keys(overlay, _OVERLAY_KEYS, "overlay")
        ov_cases = ov.get("cases", {})
        if not isinstance(ov_cases, Mapping):
            raise WeaksegError("overlay.cases: expected an object {case_id: {'status': {...}}}")
        for case, entry in ov_cases.items():
            here = f"overlay.cases.{case}"
            entry = _check_keys(entry, ("status",), here)
            if case not in known_cases:
                raise WeaksegError(f"{here}: case {case!r} is not in the dataset; was the overlay made for "
                                   "another dataset?")
            resolved[case].update(_check_status_map(entry.get("status", {}), class_names, f"{here}.status"))
    return resolved


def classes_without_masks(statuses: Mapping[str, Mapping[str, str]], class_names: Sequence[str]) -> list[str]:
    """Classes that are ``mask`` in no case: they cannot be learned (warn before training)."""
    return [cls for cls in class_names if not any(st.get(cls) == "mask" for st in statuses.values())]


def status_codes_table(statuses: Mapping[str, Mapping[str, str]], case_ids: Sequence[str],
                       class_names: Sequence[str]) -> Tensor:
    """Resolved statuses -> int8 codes in the given case and class order. Shape: returns (N, K)."""
    return torch.stack([encode_statuses([statuses[c][k] for k in class_names], where=f"case {c}")
                        for c in case_ids]) if case_ids else torch.zeros((0, len(class_names)), dtype=torch.int8)


def check_label_statuses(
    label: Tensor | np.ndarray,
    status: Mapping[str, str],
    class_names: Sequence[str],
    *,
    case_id: str,
    missing_with_voxels: Literal["error", "report"] = "report",
) -> list[str]:
    """Check an integer label map against the case's statuses (smile.md §3.2).

    Errors (``WeaksegError`` naming case and class): a value not declared (outside 0..K), voxels of an
    ``absent`` class, and with ``missing_with_voxels="error"`` voxels of an ``unknown``/``present`` class
    (use "error" on a dataset as declared, "report" after a simulation overlay, which leaves the voxels).
    Returns report lines: ``unknown``/``present`` classes with voxels, ``mask`` classes with no voxel.

    Shape:
        label: (*S) int, a tensor or a numpy array.
    """
    k = len(class_names)
    values = torch.unique(torch.as_tensor(np.asarray(label) if not isinstance(label, Tensor) else label))
    bad = [int(v) for v in values.tolist() if v < 0 or v > k]
    if bad:
        raise WeaksegError(f"case {case_id}: label value {bad[0]} is not declared in dataset.json `labels` "
                           f"(0..{k}); fix the label file or declare the class")
    present = {int(v) for v in values.tolist()}
    notes: list[str] = []
    for idx, cls in enumerate(class_names, start=1):
        st = status.get(cls, "mask")
        has = idx in present
        if st == "absent" and has:
            raise WeaksegError(f"case {case_id}, class {cls}: status 'absent' but the label map has voxels of it; "
                               "fix the label or mark the class 'mask'")
        if st in ("unknown", "present") and has:
            msg = f"case {case_id}, class {cls}: status {st!r} but the label map has voxels of it (they are ignored)"
            if missing_with_voxels == "error":
                raise WeaksegError(msg + "; mark the class 'mask' or zero its voxels")
            notes.append(msg)
        if st == "mask" and not has:
            notes.append(f"case {case_id}, class {cls}: annotated but empty")
    return notes


# --------------------------------------------------------------------------------------------------
# Slice inheritance (smile.md §15.2)
# --------------------------------------------------------------------------------------------------


def slice_status(status: Mapping[str, Status], *, presence: Mapping[str, bool] | None = None) -> dict[str, Status]:
    """Status of a 2D slice cut from a case: ``mask``, ``absent``, ``unknown`` are inherited; ``present``
    becomes ``unknown`` (the organ need not be in this slice) unless slice-level ``presence`` is given for
    that class, in which case it becomes ``present`` (True) or ``absent`` (False)."""
    out: dict[str, Status] = {}
    for cls, st in status.items():
        if st == "present":
            if presence is not None and cls in presence:
                out[cls] = "present" if presence[cls] else "absent"
            else:
                out[cls] = "unknown"
        else:
            status_code(st, where=f"class {cls}")
            out[cls] = st
    return out


def slice_status_codes(status: Tensor, *, presence: Tensor | None = None) -> Tensor:
    """Tensor form of ``slice_status``.

    Shape:
        status: (..., K) codes; presence: None or bool of the same shape (True: class in the slice).
        Returns codes of the same shape and dtype.
    """
    out = status.clone()
    is_present = status == PRESENT
    if presence is None:
        out[is_present] = UNKNOWN
        return out
    if presence.shape != status.shape:
        raise ValueError(f"slice_status_codes: presence {tuple(presence.shape)} != status {tuple(status.shape)}")
    out[is_present & ~presence.bool()] = ABSENT
    return out
