"""Simulated missing annotations: hide a share alpha of the organ masks of training cases (smile.md §10).

The simulation never edits the dataset. It returns a status *overlay* (smile.md §15.5): the ``cases``
schema of the ``weakseg`` block, turning (case, class) pairs from ``mask`` into ``unknown``, plus a
``simulation`` block recording the settings and realised counts. ``weakseg.data.status.resolve_statuses``
applies it last; the label files keep the full ground truth for evaluation and pseudo-label precision.

One uniform draw u(v, k) per (case, class), seeded by (seed, fold, case id), decides everything, so:
a pair removed at alpha is removed at every larger alpha (nesting), and a case's draws do not depend on
which other cases are in the split.

``write_partial_dataset`` (``weakseg simulate-missing``) applies an overlay to a copy of a dataset:
links to its files and a ``dataset.json`` whose ``weakseg`` block carries the hidden pairs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from weakseg.data.folds import fold_split
from weakseg.data.formats.nifti import load_volume, save_volume
from weakseg.data.formats.nnunet_raw import NnunetDataset, list_cases, read_dataset_json
from weakseg.data.status import resolve_statuses
from weakseg.errors import WeaksegError

SimulationMode = Literal["exact", "bernoulli"]

#: manifest written by ``weakseg simulate-missing`` next to the partial dataset's dataset.json
MANIFEST_NAME = "weakseg_simulation.json"


def _case_draws(case_id: str, n_classes: int, *, seed: int, fold: int | None) -> np.ndarray:
    """u(v, k) for one case: uniform in [0, 1), from (seed, fold, crc32(case id)). Shape: (K,)."""
    entropy = [int(seed), 0 if fold is None else int(fold) + 1, zlib.crc32(case_id.encode("utf-8"))]
    return np.random.default_rng(np.random.SeedSequence(entropy)).random(n_classes)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5 + 1e-9))  # round(alpha * N), halves up, robust to 0.7 * 10 = 6.999...


def simulate_missing(
    statuses: Mapping[str, Mapping[str, str]],
    *,
    alpha: float,
    mode: SimulationMode = "exact",
    seed: int = 0,
    fold: int | None = None,
    keep_at_least_one: bool = False,
    train_cases: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Hide a share ``alpha`` of the ``mask`` annotations of the training cases; return an overlay.

    Modes: ``exact`` removes, for each class, the round(alpha·N_k) training cases with the lowest u among
    the N_k cases where the class is ``mask``; ``bernoulli`` removes (v, k) iff u(v, k) < alpha. Only
    ``mask`` pairs are touched (``absent`` stays); cases outside ``train_cases`` (the test split) are never
    touched.

    ``keep_at_least_one``: a case never loses every annotation (``mask`` or ``absent``). Its protected
    class is its ``mask`` class with the largest u. ``bernoulli`` restores it when every ``mask`` class was
    drawn; ``exact`` never removes it and draws the round(alpha·N_k) cases among the others. That is
    feasible only if round(alpha·N_k) <= N_k - (cases protecting k) for every class, so never above
    alpha = (K-1)/K on fully annotated data, and a little below it in practice since the protection counts
    vary with the draws; otherwise it raises ``WeaksegError`` (a ValueError) naming the class and the
    bound. Nothing is resampled.

    Args:
        statuses: resolved statuses {case: {class: status}} (``resolve_statuses``), all cases.
        train_cases: the cases the simulation may touch; default every case in ``statuses``.
        class_names: class order (default: the first case's order).

    Returns the overlay: ``{"format": 1, "cases": {case: {"status": {class: "unknown"}}}, "simulation":
    {...}}`` with removed pairs, per-class eligible/removed counts, realised alpha and the cases that
    lost every annotation (``n_cases_all_lost``).
    """
    if not (0.0 <= alpha <= 1.0):
        raise WeaksegError(f"simulate.alpha must be in [0, 1], got {alpha}")
    if mode not in ("exact", "bernoulli"):
        raise WeaksegError(f"simulate.mode must be 'exact' or 'bernoulli', got {mode!r}")
    cases = list(statuses) if train_cases is None else list(train_cases)
    missing = [c for c in cases if c not in statuses]
    if missing:
        raise WeaksegError(f"simulate_missing: training case {missing[0]!r} has no resolved status")
    if class_names is None:
        class_names = list(next(iter(statuses.values()))) if statuses else []
    classes = list(class_names)
    cases = sorted(cases)  # order only breaks ties in u; results do not depend on the input order
    k = len(classes)

    u = np.stack([_case_draws(c, k, seed=seed, fold=fold) for c in cases]) if cases else np.zeros((0, k))
    is_mask = np.array([[statuses[c].get(cls) == "mask" for cls in classes] for c in cases], dtype=bool)
    is_absent = np.array([[statuses[c].get(cls) == "absent" for cls in classes] for c in cases], dtype=bool)
    is_mask = is_mask.reshape(len(cases), k)
    is_absent = is_absent.reshape(len(cases), k)

    # protected class: the mask class with the largest u, in cases that would otherwise lose everything
    protect = np.zeros_like(is_mask)
    if keep_at_least_one:
        needs = is_mask.any(1) & ~is_absent.any(1)
        masked_u = np.where(is_mask, u, -1.0)
        rows = np.nonzero(needs)[0]
        protect[rows, masked_u[rows].argmax(1)] = True

    removed = np.zeros_like(is_mask)
    if mode == "bernoulli":
        removed = is_mask & (u < alpha)
        if keep_at_least_one:
            lost_all = (is_mask & ~removed).sum(1) == 0
            removed &= ~(protect & lost_all[:, None])
    else:
        for j, cls in enumerate(classes):
            eligible = np.nonzero(is_mask[:, j])[0]
            n_remove = _round_half_up(alpha * len(eligible))
            pool = eligible[~protect[eligible, j]]
            if n_remove > len(pool):
                raise WeaksegError(
                    f"simulate: exact mode with keep_at_least_one cannot remove round({alpha}·{len(eligible)}) = "
                    f"{n_remove} '{cls}' annotations: {len(eligible) - len(pool)} of its {len(eligible)} cases "
                    f"protect it, so at most {len(pool)} can lose it. The bound is alpha <= 1 - (protecting "
                    f"cases)/N per class, on fully annotated data about (K-1)/K = {(k - 1) / k:.3f} or less; "
                    "lower alpha, use mode=bernoulli or keep_at_least_one=false")
            order = pool[np.lexsort((pool, u[pool, j]))]  # lowest u first, ties by case order
            removed[order[:n_remove], j] = True

    annotated_before = (is_mask | is_absent).any(1)
    annotated_after = ((is_mask & ~removed) | is_absent).any(1)
    lost = [cases[i] for i in np.nonzero(annotated_before & ~annotated_after)[0]]

    overlay_cases: dict[str, dict[str, dict[str, str]]] = {}
    for i, j in zip(*np.nonzero(removed), strict=True):
        overlay_cases.setdefault(cases[i], {"status": {}})["status"][classes[j]] = "unknown"
    eligible_count = {cls: int(is_mask[:, j].sum()) for j, cls in enumerate(classes)}
    removed_count = {cls: int(removed[:, j].sum()) for j, cls in enumerate(classes)}
    simulation = {
        "kind": "missing_annotations",
        "mode": mode,
        "alpha": float(alpha),
        "seed": int(seed),
        "fold": fold,
        "keep_at_least_one": bool(keep_at_least_one),
        "classes": classes,
        "n_train_cases": len(cases),
        "train_cases": cases,
        "eligible_count": eligible_count,
        "removed_count": removed_count,
        "realised_alpha": {cls: (removed_count[cls] / eligible_count[cls] if eligible_count[cls] else None)
                           for cls in classes},
        "removed": {cls: [cases[i] for i in np.nonzero(removed[:, j])[0]] for j, cls in enumerate(classes)},
        "cases_all_lost": lost,
        "n_cases_all_lost": len(lost),
    }
    return {"format": 1, "cases": dict(sorted(overlay_cases.items())), "simulation": simulation}


def write_overlay(path: str | os.PathLike[str], overlay: Mapping[str, Any]) -> Path:
    """Write an overlay (the simulation manifest) as JSON, atomically (temp file + ``os.replace``).

    Raises ``ValueError`` for values JSON cannot hold exactly (NaN, inf).
    """
    path = Path(path)
    text = json.dumps(overlay, indent=2, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)  # an interrupted write never leaves half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_overlay(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an overlay written by ``write_overlay`` (or by hand); checked by ``resolve_statuses``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeaksegError(f"{path}: status overlay not found; check data.status_overlay") from None
    except json.JSONDecodeError as err:
        raise WeaksegError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases", {}), dict):
        raise WeaksegError(f"{path}: an overlay is an object with a 'cases' object")
    return data


def materialise_label(label: np.ndarray, status: Mapping[str, str], class_names: Sequence[str]) -> np.ndarray:
    """Copy of an integer label map with the voxels of every non-``mask`` class set to 0.

    For writing a partial dataset other software (nnU-Net) can train on; weakseg itself reads the full
    map and masks it by status.

    Shape:
        label: (*S) int. Returns the same shape and dtype.
    """
    out = np.array(label, copy=True)
    for idx, cls in enumerate(class_names, start=1):
        if status.get(cls, "mask") != "mask":
            out[out == idx] = 0
    return out


# ----------------------------------------------------------------------------------------------- dataset writer
def write_partial_dataset(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    alpha: float,
    mode: SimulationMode = "exact",
    seed: int = 0,
    keep_at_least_one: bool = False,
    fold: int | None = None,
    n_folds: int = 5,
    data_seed: int = 0,
    materialise: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """``weakseg simulate-missing``: a partially annotated copy of the nnU-Net raw dataset ``src`` at ``dst``.

    ``dst`` gets links to the images and labels of ``src``, a ``dataset.json`` whose ``weakseg`` block marks
    every removed (case, class) pair ``unknown``, and the manifest ``weakseg_simulation.json`` (the overlay
    of ``simulate_missing`` plus the source and the untouched test cases). Labels stay links to the full
    ground truth: weakseg never shows a hidden organ to training (the loader masks labels by status) and
    needs the truth for evaluation and SMILEr's pseudo-label precision. ``materialise`` writes label copies
    with the removed classes zeroed instead, for software that reads the label files only (nnU-Net); weakseg
    then has no withheld truth for them. With ``fold`` only the training volumes of that fold are touched
    (the seeded split of ``data.folds.fold_split``); ``imagesTs`` never is. Written into ``dst.tmp-<pid>``
    and renamed when complete; returns the manifest.
    """
    src, dst = Path(src), Path(dst)
    ds = read_dataset_json(src)
    cases = list_cases(src, "train", dataset=ds)
    ids = [c.case_id for c in cases]
    classes = list(ds.class_names)
    statuses = resolve_statuses(ds.weakseg, ids, classes)
    test_cases: list[str] = [c.case_id for c in list_cases(src, "test", dataset=ds)]
    train_cases = ids
    if fold is not None:
        split = fold_split(ids, n_folds=n_folds, fold=fold, seed=data_seed)
        train_cases = split["train"] + split["valid"]
        test_cases = split["test"] + test_cases
    overlay = simulate_missing(statuses, alpha=alpha, mode=mode, seed=seed, fold=fold,
                               keep_at_least_one=keep_at_least_one, train_cases=train_cases, class_names=classes)
    overlay["simulation"].update(source=str(src.resolve()), n_folds=n_folds if fold is not None else None,
                                 data_seed=data_seed, materialised=materialise, untouched_cases=sorted(test_cases))
    if dst.exists():
        if not overwrite:
            raise WeaksegError(f"{dst}: already exists; choose another destination or pass --overwrite")
        shutil.rmtree(dst)
    tmp = dst.parent / f"{dst.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_case_files(src, tmp, ds, overlay, statuses, classes, materialise=materialise)
        raw = dict(ds.raw)
        raw["weakseg"] = _merged_block(raw.get("weakseg"), overlay)
        (tmp / "dataset.json").write_text(json.dumps(raw, indent=2) + "\n")
        for extra in ("splits_final.json",):
            if (src / extra).is_file():
                shutil.copyfile(src / extra, tmp / extra)
        write_overlay(tmp / MANIFEST_NAME, overlay)
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return overlay


def _write_case_files(src: Path, tmp: Path, ds: NnunetDataset, overlay: Mapping[str, Any],
                      statuses: Mapping[str, Mapping[str, str]], classes: Sequence[str], *,
                      materialise: bool) -> None:
    """Every image and label file of ``src`` into ``tmp``: a link, or a zeroed label copy (``materialise``)."""
    for folder in ("imagesTr", "imagesTs", "labelsTr", "labelsTs"):
        if not (src / folder).is_dir():
            continue
        (tmp / folder).mkdir(parents=True)
        for f in sorted((src / folder).iterdir()):
            if f.name.startswith("."):
                continue
            case = f.name[: -len(ds.file_ending)] if f.name.endswith(ds.file_ending) else None
            hidden = overlay["cases"].get(case, {}).get("status", {}) if folder == "labelsTr" else {}
            if materialise and hidden:
                vol = load_volume(f, kind="label")
                status = {**statuses[case], **hidden}
                save_volume(materialise_label(vol.array, status, classes), vol, tmp / folder / f.name,
                            dtype=vol.array.dtype)
            else:
                _link(f, tmp / folder / f.name)


def _merged_block(block: Mapping[str, Any] | None, overlay: Mapping[str, Any]) -> dict[str, Any]:
    """The source's ``weakseg`` block with the overlay's statuses written over it, cases sorted by id."""
    block = dict(block or {"format": 1})
    block_cases = {c: {**e, "status": dict(e.get("status", {}))} for c, e in (block.get("cases") or {}).items()}
    for case, entry in overlay["cases"].items():
        block_cases.setdefault(case, {"status": {}})
        block_cases[case].setdefault("status", {}).update(entry["status"])
    block["cases"] = dict(sorted(block_cases.items()))
    return block


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src.resolve(), dst)
