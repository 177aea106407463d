"""SMILEr pseudo-label selection: which ignored pixels become positives in round t (smile.md §8-9).

Petit et al. (DLMIA 2018), Algorithm 1: in round t = 1..T, for every image where class k is not
annotated, the pixels that the previous model predicts positive among the ignored ones (W⁰_k = 0,
p_k > tau) are ranked by score and the best ceil(gamma_t·|C|) of them, gamma_t = t/T·gamma_max, become
positive targets. Original labels never change; pseudo-labels are positives only (with the optional
``propagate_negatives``). Everything here is a pure function on tensors, so the round driver around
``fit()`` only calls ``relabel_round`` and ``pseudo_label_stats``. How pseudo-labels change the targets
(``apply_pseudo_labels``) lives in ``weakseg.data.status`` beside the status targets, because the training
step applies it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, get_args

import torch
from torch import Tensor

from weakseg.config.choices import CandidateSet, InitName, RankScope, ScoreName, choice_problems
from weakseg.data.status import PRESENT, apply_pseudo_labels, is_missing
from weakseg.errors import WeaksegError


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class SmilerOptions:
    """Every knob of the ``smiler:`` config block (smile.md §8.3, §9.1, §18), validated on creation.

    ``init``: the weights each round t >= 1 starts from: ``continue`` (m_{t-1}, our default), ``smile`` (m_0)
    or ``scratch`` (a new model initialised exactly as round 0 was, from ``train.seed``, as the paper's
    "train a new model"; only the pseudo-labels differ). Every round is its own ``fit`` with a new optimiser
    and ``round_steps`` steps (None: ``train.steps``, round 0's full budget, the paper's retraining).
    """

    rounds: int = 3
    gamma_max: float = 1.0
    tau: float = 0.5
    score: ScoreName = "prob"
    candidate_set: CandidateSet = "predicted_positive"
    rank_scope: RankScope = "image"
    cumulative: bool = True
    propagate_negatives: bool = False
    restrict_to_present: bool = False
    init: InitName = "continue"
    round_steps: int | None = None
    mc_samples: int = 10
    mc_dropout_p: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.rounds, int) and self.rounds >= 1):
            raise WeaksegError(f"smiler.rounds must be an integer >= 1, got {self.rounds!r}")
        if not (_is_number(self.gamma_max) and 0.0 < self.gamma_max <= 1.0):
            raise WeaksegError(f"smiler.gamma_max must be a number in (0, 1], got {self.gamma_max!r}")
        if not (_is_number(self.tau) and 0.0 <= self.tau < 1.0):
            raise WeaksegError(f"smiler.tau must be a number in [0, 1), got {self.tau!r}")
        for problem in choice_problems(self, "smiler."):   # the Literal fields: score, candidate_set, ...
            raise WeaksegError(problem)
        if self.round_steps is not None and not (isinstance(self.round_steps, int) and self.round_steps >= 1):
            raise WeaksegError(f"smiler.round_steps must be null or an integer >= 1, got {self.round_steps!r}")
        if not (isinstance(self.mc_samples, int) and self.mc_samples >= 2):
            raise WeaksegError(f"smiler.mc_samples must be an integer >= 2, got {self.mc_samples!r}")
        if self.mc_dropout_p is not None and not (isinstance(self.mc_dropout_p, (int, float))
                                                  and 0.0 < self.mc_dropout_p < 1.0):
            raise WeaksegError(f"smiler.mc_dropout_p must be null (the trained dropout) or in (0, 1), "
                               f"got {self.mc_dropout_p!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SmilerOptions:
        """Build from a config mapping; unknown keys raise with the list of valid ones."""
        values = dict(values or {})
        names = [f.name for f in fields(cls)]
        extra = [key for key in values if key not in names]
        if extra:
            raise WeaksegError(f"smiler.{extra[0]}: unknown key; valid keys: {', '.join(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def gamma(self, t: int) -> float:
        """gamma_t of round t (1-based)."""
        return gamma_schedule(t, rounds=self.rounds, gamma_max=self.gamma_max)


#: the MC-dropout preset of the slides: lowest std first, 33%, 66%, 100% of the candidates (smile.md §9.1)
SMILER_MC_PRESET: dict[str, Any] = {"score": "mc_std", "rounds": 3, "gamma_max": 1.0}


def gamma_schedule(t: int, *, rounds: int, gamma_max: float = 1.0) -> float:
    """gamma_t = t/T · gamma_max, the share of candidates accepted in round t = 1..T (linear schedule)."""
    if not 1 <= t <= rounds:
        raise ValueError(f"round t must be in 1..{rounds}, got {t}")
    return gamma_max * t / rounds


def selection_count(gamma: float, n_candidates: int) -> int:
    """ceil(gamma · |C|), robust to float noise (2/3 · 3 is 2, not 3)."""
    return min(n_candidates, math.ceil(round(gamma * n_candidates, 9)))


def _unit_ids(n: int, rank_scope: str, volume_ids: Sequence[Any] | Tensor | None, device: torch.device) -> Tensor:
    if rank_scope == "image":
        return torch.arange(n, device=device)
    if rank_scope == "global":
        return torch.zeros(n, dtype=torch.long, device=device)
    if volume_ids is None:
        raise ValueError("rank_scope='volume' needs volume_ids: one id per image (the volume it was cut from)")
    ids = volume_ids.tolist() if isinstance(volume_ids, Tensor) else list(volume_ids)
    if len(ids) != n:
        raise ValueError(f"volume_ids has {len(ids)} entries for {n} images")
    index: dict[Any, int] = {}
    return torch.tensor([index.setdefault(v, len(index)) for v in ids], dtype=torch.long, device=device)


def select_pseudo_labels(
    prob: Tensor,
    weight0: Tensor,
    status: Tensor,
    *,
    gamma: float,
    tau: float = 0.5,
    score: ScoreName = "prob",
    std: Tensor | None = None,
    confidence: Tensor | None = None,
    candidate_set: CandidateSet = "predicted_positive",
    rank_scope: RankScope = "image",
    volume_ids: Sequence[Any] | Tensor | None = None,
    restrict_to_present: bool = False,
) -> Tensor:
    """One round's pseudo-positives (smile.md §8.2, §9.1).

    For each class k and each image whose status for k is missing (``unknown``/``present``; only
    ``present`` with ``restrict_to_present``): candidates C = {x : W⁰_k(x) = 0 and p_k(x) > tau}
    (``predicted_positive``), those of them where k is also the decoded label, i.e. p_k is the largest
    of the K probabilities (``predicted_label``: a pixel is a candidate of one class at most, as organs
    do not overlap), or every W⁰_k = 0 pixel (``all_ignored``). Within each ranking unit
    (``rank_scope``: an image, a volume's pooled slices, or all eligible images of the class), the best
    ceil(gamma·|C|) candidates are chosen:
    ``prob`` by descending p; ``mc_std`` by ascending std, then descending mean p; ``confidence`` by
    descending confidence, then descending p; remaining ties by flat index (image order, then pixel
    order), so the result is deterministic.

    Shape:
        prob: (N, K, *S) probabilities (the MC mean for ``mc_std``); weight0: (N, K, *S) original W;
        status: (N, K) codes; std, confidence: (N, K, *S) when the score needs them; volume_ids: (N,).
        Returns (N, K, *S) bool.
    """
    if prob.shape != weight0.shape or prob.ndim < 3 or tuple(status.shape) != tuple(prob.shape[:2]):
        raise ValueError(f"select_pseudo_labels: prob {tuple(prob.shape)} and weight0 {tuple(weight0.shape)} must "
                         f"be (N, K, *S) and status {tuple(status.shape)} (N, K)")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if score == "mc_std":
        key = std
    elif score == "confidence":
        key = confidence
    elif score == "prob":
        key = None
    else:
        raise ValueError(f"score must be prob, mc_std or confidence, got {score!r}")
    if score != "prob" and (key is None or key.shape != prob.shape):
        raise ValueError(f"score={score!r} needs a {'std' if score == 'mc_std' else 'confidence'} tensor shaped "
                         f"like prob {tuple(prob.shape)}")
    if candidate_set not in get_args(CandidateSet):
        raise ValueError(f"candidate_set must be one of {', '.join(get_args(CandidateSet))}, got {candidate_set!r}")
    if rank_scope not in get_args(RankScope):
        raise ValueError(f"rank_scope must be image, volume or global, got {rank_scope!r}")

    n, k = prob.shape[:2]
    device = prob.device
    out = torch.zeros(prob.shape, dtype=torch.bool, device=device)
    codes = status.to(device).long()
    eligible = (codes == PRESENT) if restrict_to_present else is_missing(codes)   # (N, K)
    units = _unit_ids(n, rank_scope, volume_ids, device)                        # (N,)
    p_flat = prob.reshape(n, k, -1)                                             # (N, K, P)
    cand = (weight0.reshape(n, k, -1) == 0) & eligible[:, :, None]              # (N, K, P)
    if candidate_set != "all_ignored":
        cand &= p_flat > tau
    if candidate_set == "predicted_label":                                      # first max on ties, as decoding
        cand &= torch.zeros_like(cand).scatter_(1, p_flat.argmax(1, keepdim=True), True)
    key_flat = None if key is None else key.reshape(n, k, -1)
    out_flat = out.view(n, k, -1)
    for c in range(k):
        img, pix = cand[:, c].nonzero(as_tuple=True)                            # candidates in flat-index order
        if img.numel() == 0:
            continue
        p = p_flat[img, c, pix]
        # lexicographic sort by stable passes, least significant key first (flat index order is the base)
        order = torch.arange(img.numel(), device=device)
        if score == "mc_std":
            keys = (-p, key_flat[img, c, pix])                                  # secondary, primary
        elif score == "confidence":
            keys = (-p, -key_flat[img, c, pix])
        else:
            keys = (-p,)
        for sort_key in (*keys, units[img]):
            order = order[torch.sort(sort_key[order], stable=True).indices]
        unit_sorted = units[img][order]                                         # grouped by unit, best first
        uniq, counts = torch.unique_consecutive(unit_sorted, return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(order.numel(), device=device) - torch.repeat_interleave(starts, counts)
        take_n = torch.tensor([selection_count(gamma, int(m)) for m in counts.tolist()], device=device)
        chosen = order[rank < torch.repeat_interleave(take_n, counts)]
        out_flat[img[chosen], c, pix[chosen]] = True
    return out


def update_pseudo_labels(previous: Tensor | None, selected: Tensor, *, cumulative: bool = True) -> Tensor:
    """P_t = P_{t-1} ∪ S_t (``cumulative``, Algorithm 1) or S_t (rebuilt from the originals each round)."""
    if previous is None or not cumulative:
        return selected.clone()
    return previous | selected


def pseudo_label_stats(
    pseudo: Tensor,
    truth: Tensor | None,
    status: Tensor,
    *,
    class_names: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per-class bookkeeping of the pseudo-labels against the withheld full ground truth (smile.md §8.4).

    Over the images where the class is missing: ``n_pseudo`` (pixels), ``n_images`` (images with a
    pseudo-label), and with ``truth``: ``tp``, ``fp``, ``precision`` = TP/(TP+FP), ``n_truth`` (true pixels of
    the class in those images), ``recall`` = TP/n_truth, and the per-image precision spread
    (``image_precision_min/mean/max``). Undefined ratios are None (JSON null), never NaN.

    Shape:
        pseudo, truth: (N, K, *S) bool; status: (N, K) codes. Returns {class name: {...}}.
    """
    n, k = pseudo.shape[:2]
    names = list(class_names) if class_names is not None else [str(i + 1) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"pseudo_label_stats: {len(names)} class names for K = {k}")
    missing = is_missing(status).to(pseudo.device)
    p = pseudo.reshape(n, k, -1).bool() & missing[:, :, None]                  # (N, K, P)
    stats: dict[str, dict[str, Any]] = {}
    g = None if truth is None else truth.reshape(n, k, -1).bool()
    for c, name in enumerate(names):
        per_image = p[:, c].sum(1)                                               # (N,)
        entry: dict[str, Any] = {"n_pseudo": int(per_image.sum()), "n_images": int((per_image > 0).sum()),
                                 "n_missing_images": int(missing[:, c].sum())}
        if g is not None:
            tp_img = (p[:, c] & g[:, c]).sum(1)                                  # (N,)
            tp, n_pseudo = int(tp_img.sum()), entry["n_pseudo"]
            n_truth = int((g[:, c] & missing[:, c, None]).sum())
            entry.update(tp=tp, fp=n_pseudo - tp, n_truth=n_truth,
                         precision=tp / n_pseudo if n_pseudo else None,
                         recall=tp / n_truth if n_truth else None)
            has = per_image > 0
            if bool(has.any()):
                img_prec = tp_img[has].double() / per_image[has].double()
                entry.update(image_precision_min=float(img_prec.min()), image_precision_mean=float(img_prec.mean()),
                             image_precision_max=float(img_prec.max()))
            else:
                entry.update(image_precision_min=None, image_precision_mean=None, image_precision_max=None)
        stats[name] = entry
    return stats


@dataclass
class RelabelResult:
    """Output of one SMILEr round: pseudo-labels so far, the new training targets, and the statistics.

    Shape:
        pseudo, target, weight: (N, K, *S).
    """

    pseudo: Tensor
    target: Tensor
    weight: Tensor
    stats: dict[str, dict[str, Any]]
    gamma: float


def relabel_round(
    t: int,
    prob: Tensor,
    target0: Tensor,
    weight0: Tensor,
    status: Tensor,
    options: SmilerOptions,
    *,
    previous: Tensor | None = None,
    std: Tensor | None = None,
    confidence: Tensor | None = None,
    volume_ids: Sequence[Any] | Tensor | None = None,
    truth: Tensor | None = None,
    class_names: Sequence[str] | None = None,
) -> RelabelResult:
    """Round t of SMILEr: select with gamma_t, merge with earlier rounds, rebuild (Y, W), count.

    ``prob`` (and ``std``/``confidence``) come from model m_{t-1} (``weakseg.relabel.scoring``); ``target0``,
    ``weight0`` are the original targets from ``status_targets``; ``truth`` is the withheld full ground truth
    when known (simulations, phantoms).

    Shape:
        prob, target0, weight0, previous, std, confidence, truth: (N, K, *S); status: (N, K).
    """
    gamma = options.gamma(t)
    selected = select_pseudo_labels(
        prob, weight0, status, gamma=gamma, tau=options.tau, score=options.score, std=std, confidence=confidence,
        candidate_set=options.candidate_set, rank_scope=options.rank_scope, volume_ids=volume_ids,
        restrict_to_present=options.restrict_to_present,
    )
    pseudo = update_pseudo_labels(previous, selected, cumulative=options.cumulative)
    target, weight = apply_pseudo_labels(target0, weight0, pseudo, status,
                                         propagate_negatives=options.propagate_negatives)
    stats = pseudo_label_stats(pseudo, truth, status, class_names=class_names)
    return RelabelResult(pseudo=pseudo, target=target, weight=weight, stats=stats, gamma=gamma)
