"""Patient-level BraTS splits and the labelled-patient draw (``genseg.md`` §10.4, §10.5).

Both follow the reference's random draws, so BraTS 2017 with seed 0 gives the reference's train / valid /
test membership; labels are removed one whole patient at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from weakseg.errors import WeaksegError

REFERENCE_PROPORTIONS: tuple[int, int, int] = (228, 28, 29)   # train / valid / test of 285 patients
SPLITS: tuple[str, str, str] = ("train", "valid", "test")


def reference_order(ids: Sequence[str]) -> list[str]:
    """Patients in the reference's HDF5 key order.

    The reference numbers patients 0..n-1 in ``sorted()`` folder order and iterates the keys as strings
    ('0', '1', '10', '100', ...); its shuffled integers are positions in that order (§10.4).
    """
    ids = sorted(ids)
    return [ids[int(k)] for k in sorted(str(i) for i in range(len(ids)))]


def split_counts(n: int, proportions: Sequence[int] = REFERENCE_PROPORTIONS) -> tuple[int, int, int]:
    """(train, valid, test) sizes: valid = round(n * p_val / sum), test = round(n * p_test / sum), halves up.

    With the reference's 228/28/29: 285 -> 228/28/29, 210 HGG -> 168/21/21, 75 LGG -> 60/7/8.
    """
    if len(proportions) != 3 or any(p < 0 for p in proportions) or sum(proportions) <= 0:
        raise WeaksegError(f"split proportions {list(proportions)}: give three non-negative numbers "
                           f"(train, valid, test), e.g. 228 28 29")
    total = float(sum(proportions))
    n_val = int(math.floor(n * proportions[1] / total + 0.5))
    n_test = min(n - n_val, int(math.floor(n * proportions[2] / total + 0.5)))
    return n - n_val - n_test, n_val, n_test


def split_patients(groups: Mapping[str, Sequence[str]], *, seed: int = 0,
                   proportions: Sequence[int] = REFERENCE_PROPORTIONS) -> dict[str, list[str]]:
    """Seeded patient-level train/valid/test split, computed per group (grade), in the given group order.

    One ``RandomState(seed)`` shuffles each group's positions in turn (HGG then LGG for 2017, the
    reference's draw); valid takes the first ``n_val`` shuffled patients of each group, test the next
    ``n_test``, train the rest (``split_counts``). Patients are taken in ``reference_order``, so BraTS 2017
    with seed 0 reproduces the reference membership. Train keeps its shuffled order, which the labelled
    draw (``choose_labelled_patients``) indexes.
    """
    rs = np.random.RandomState(seed)
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    for _, ids in groups.items():
        order = reference_order(ids)
        perm = np.arange(len(order))
        rs.shuffle(perm)
        shuffled = [order[i] for i in perm]
        _, n_val, n_test = split_counts(len(order), proportions)
        out["valid"] += shuffled[:n_val]
        out["test"] += shuffled[n_val:n_val + n_test]
        out["train"] += shuffled[n_val + n_test:]
    return out


def choose_labelled_patients(n_p: Sequence[int], *, fraction: float, seed: int = 0) -> np.ndarray:
    """Which training patients keep their masks: labels are removed one whole patient at a time (§10.5).

    Walks ``RandomState(seed).permutation(n)`` and unlabels patients until about ``1 - fraction`` of the
    P slices are unlabelled, never reaching the cap exactly (``>=``), so at least ``fraction`` of P slices
    stays labelled. Ours: ``fraction == 0`` unlabels every patient (the reference would keep some).

    Shape:
        n_p: (n,) P-slice count per training patient, in training order -> returns (n,) bool labelled.
    """
    if not 0.0 <= fraction <= 1.0:
        raise WeaksegError(f"labelled fraction {fraction}: use a number in [0, 1] (e.g. 0.01 for 1%)")
    n_p = np.asarray(n_p, dtype=np.int64)
    labelled = np.ones(len(n_p), dtype=bool)
    if fraction == 0.0:
        labelled[:] = False
        return labelled
    total = int(n_p.sum())
    cap = int(min(total, total * (1.0 - fraction) + 0.5))
    masked = 0
    for i in np.random.RandomState(seed).permutation(len(n_p)):
        if n_p[i] > 0 and masked >= cap:
            continue
        if n_p[i] + masked >= cap:
            continue
        labelled[i] = False
        masked += int(n_p[i])
    return labelled
