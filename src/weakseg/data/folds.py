"""Cross-validation folds over volumes: the seeded split of case ids into train / valid / test.

Shared by the organs loader (``weakseg.data.organs``), the missing-annotation simulation
(``weakseg.data.simulate``, which only touches the training volumes of a fold) and the reproduction grids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from weakseg.errors import WeaksegError


def fold_split(case_ids: Sequence[str], *, n_folds: int = 5, fold: int = 0, seed: int = 0,
               n_valid: int = 0) -> dict[str, list[str]]:
    """Seeded K-fold split of volumes: test = fold ``fold``; valid = the first ``n_valid`` of the rest.

    The permutation is ``RandomState(seed)`` over the sorted ids, cut into ``n_folds`` near-equal folds
    (``numpy.array_split``), so each volume is tested exactly once over the folds.
    Returns ``{"train": [...], "valid": [...], "test": [...]}`` (sorted ids).
    """
    ids = sorted(case_ids)
    if n_folds < 2:
        raise WeaksegError(f"data.organs.n_folds must be >= 2, got {n_folds}")
    if not 0 <= fold < n_folds:
        raise WeaksegError(f"data.organs.fold must be in 0..{n_folds - 1}, got {fold}")
    if len(ids) < n_folds:
        raise WeaksegError(f"{len(ids)} training volumes cannot make {n_folds} folds; lower data.organs.n_folds")
    perm = [ids[i] for i in np.random.RandomState(seed).permutation(len(ids))]
    folds = [list(f) for f in np.array_split(np.array(perm, dtype=object), n_folds)]
    rest = [c for j, f in enumerate(folds) if j != fold for c in f]
    if not 0 <= n_valid < len(rest):
        raise WeaksegError(f"data.organs.n_valid={n_valid} leaves no training volume out of {len(rest)}; lower it")
    return {"train": sorted(rest[n_valid:]), "valid": sorted(rest[:n_valid]), "test": sorted(folds[fold])}


__all__ = ["fold_split"]
