"""``weakseg check DATASET``: validate a dataset alone and report every problem at once.

Kinds (detected from the folder, or forced with ``kind=``):

- ``nnunet``: an nnU-Net v2 raw folder (``dataset.json``): missing/orphan files, channel and label
  geometry (shape and affine), NaN/Inf voxels, label values not declared in ``labels``, the ``weakseg``
  status block (``weakseg.data.status.resolve_statuses``: unknown keys, classes, cases, sources), voxels of
  a class marked ``absent``, and classes never annotated (no case with status ``mask`` and voxels of it);
- ``brats``: a BraTS folder (``HGG/LGG`` 2017 or 2018-2021 subject folders): missing or duplicate modality
  files, geometry, NaN voxels, label values outside {0, 1, 2, 4}, and no tumour voxel anywhere;
- ``brats-converted``: a folder made by ``weakseg convert brats``: ``index.json``, the row arrays and
  memory-mapped images of every split (unreadable or truncated files, row counts, NaN/Inf pixels, mask
  values), and no labelled P slice in the training split;
- ``mnist``: a folder with the four MNIST IDX files: each file's header and length, pair agreement.

Problems are errors (the dataset would fail or silently mislead training); ``notes`` are facts worth
knowing that do not block (e.g. voxels of a class marked ``unknown``, which are ignored).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weakseg.errors import WeaksegError

KINDS: tuple[str, ...] = ("nnunet", "brats", "brats-converted", "mnist")
_ROW_CHUNK = 256   # rows of a converted split scanned at a time for NaN/Inf (bounded memory)


@dataclass
class CheckReport:
    """What ``check_dataset`` found: the kind, a short summary, blocking problems and notes."""

    root: Path
    kind: str
    summary: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def message(self) -> str:
        """Every problem, one per line after a count (the text of the error ``raise_if_problems`` raises)."""
        if len(self.problems) == 1:           # one problem: one line
            return f"{self.root} ({self.kind}): 1 problem(s): {self.problems[0]}"
        return (f"{self.root} ({self.kind}): {len(self.problems)} problem(s):\n  " + "\n  ".join(self.problems))

    def raise_if_problems(self) -> None:
        if self.problems:
            raise WeaksegError(self.message())


def detect_kind(root: str | os.PathLike) -> str:
    """The dataset kind of ``root``; raises when it looks like none of ``KINDS``."""
    root = Path(root)
    if not root.exists():
        raise WeaksegError(f"{root}: not found; give a dataset folder ({', '.join(KINDS)})")
    if not root.is_dir():
        raise WeaksegError(f"{root}: not a folder; give a dataset folder ({', '.join(KINDS)})")
    if (root / "dataset.json").is_file():
        return "nnunet"
    if (root / "index.json").is_file():
        return "brats-converted"
    from weakseg.data.mnist_sources import IDX_FILES
    names = {p.name.removesuffix(".gz") for p in root.iterdir()}
    if names & set(IDX_FILES.values()):
        return "mnist"
    if (root / "HGG").is_dir() or (root / "LGG").is_dir() or any(
            d.is_dir() and any(f.name.endswith((".nii", ".nii.gz")) for f in d.iterdir())
            for d in root.iterdir() if not d.name.startswith(".")):
        return "brats"
    raise WeaksegError(f"{root}: cannot tell the dataset kind (no dataset.json, index.json, MNIST IDX files or "
                       f"BraTS subject folders); pass --kind {{{','.join(KINDS)}}}")


def check_dataset(root: str | os.PathLike, *, kind: str = "auto", overlay: str | os.PathLike | None = None,
                  progress: Callable[[Sequence[Any]], Sequence[Any]] | None = None) -> CheckReport:
    """Validate a dataset folder; every problem found goes into the report (nothing is raised for them).

    ``overlay`` (nnU-Net only): a status overlay JSON (``weakseg simulate-missing``) checked against the
    dataset and applied before the status checks. ``progress`` wraps per-case loops (e.g. ``tqdm``).
    """
    root = Path(root)
    if kind == "auto":
        kind = detect_kind(root)
    if kind not in KINDS:
        raise WeaksegError(f"--kind {kind!r}: use auto or one of {', '.join(KINDS)}")
    report = CheckReport(root=root, kind=kind)
    wrap = progress or (lambda items: items)
    {"nnunet": _check_nnunet, "brats": _check_brats, "brats-converted": _check_brats_converted,
     "mnist": _check_mnist}[kind](root, report, wrap, overlay)
    return report


# ------------------------------------------------------------------------------------------- nnU-Net raw
def _check_nnunet(root: Path, report: CheckReport, wrap: Callable, overlay: str | os.PathLike | None) -> None:
    from weakseg.data.formats.nifti import load_volume
    from weakseg.data.formats.nnunet_raw import check_case, list_cases, read_dataset_json
    from weakseg.data.status import resolve_statuses

    try:
        ds = read_dataset_json(root)
    except WeaksegError as exc:
        report.problems.append(str(exc))
        return
    cases = []
    for split in ("train", "test"):
        try:
            cases += list_cases(root, split, dataset=ds)
        except WeaksegError as exc:
            report.problems += _split_lines(str(exc))
    train = [c for c in cases if c.split == "train"]
    if not train and not report.problems:
        report.problems.append(f"{root / 'imagesTr'}: no training case; an nnU-Net dataset needs at least one "
                               "imagesTr/<case>_0000<ending> with its labelsTr/<case><ending>")
    declared = ds.label_values()
    values: dict[str, set[int]] = {}
    for case in wrap(cases):
        found = check_case(case, ds, read_voxels=False)           # geometry from headers
        report.problems += found
        if found:
            continue
        for path in case.images:
            try:
                load_volume(path, kind="image")                   # NaN/Inf, truncated data
            except WeaksegError as exc:
                report.problems.append(str(exc))
        if case.label is None:
            continue
        try:
            vals = {int(v) for v in np.unique(load_volume(case.label, kind="label").array)}
        except WeaksegError as exc:
            report.problems.append(str(exc))
            continue
        extra = sorted(vals - declared)
        if extra:
            report.problems.append(f"case {case.case_id}: {case.label.name} holds label value(s) {extra} not declared "
                                   f"in dataset.json labels {ds.labels}; fix the label file or declare the class")
        values[case.case_id] = vals

    classes = list(ds.class_names)
    overlay_data = None
    if overlay is not None:
        try:
            overlay_data = json.loads(Path(overlay).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            report.problems.append(f"{overlay}: cannot read the status overlay ({exc}); give the JSON written by "
                                   "weakseg simulate-missing")
    try:
        statuses = resolve_statuses(ds.weakseg, [c.case_id for c in train], classes, overlay=overlay_data,
                                    where=f"{root / 'dataset.json'}: weakseg")
    except WeaksegError as exc:
        report.problems.append(str(exc))
        statuses = None
    counts = {cls: {"mask": 0, "present": 0, "absent": 0, "unknown": 0, "with_voxels": 0} for cls in classes}
    if statuses is not None:
        for cid, vals in values.items():
            for cls in classes:
                st = statuses[cid][cls]
                has = ds.labels[cls] in vals
                counts[cls][st] += 1
                counts[cls]["with_voxels"] += int(has)
                if st == "absent" and has:
                    report.problems.append(f"case {cid}, class {cls}: status 'absent' but the label map has voxels "
                                           "of it; fix the label or mark the class 'mask' in dataset.json weakseg")
                elif st in ("unknown", "present") and has:
                    report.notes.append(f"case {cid}, class {cls}: status {st!r} but the label map has voxels of it "
                                        "(they are ignored in training)")
        if values and len(values) == len(train):
            for cls in classes:
                usable = sum(1 for cid, vals in values.items()
                             if statuses[cid][cls] == "mask" and ds.labels[cls] in vals)
                if usable == 0:
                    report.problems.append(
                        f"class {cls} (label {ds.labels[cls]}) is never annotated: no training case has status "
                        "'mask' with voxels of it, so it cannot be learned; annotate it in some case, fix its "
                        "status, or remove it from dataset.json labels")
    report.summary = {"cases": {"train": len(train), "test": len(cases) - len(train)}, "channels": ds.n_channels,
                      "labels": ds.labels, "status_counts": counts if statuses is not None else None}


# ------------------------------------------------------------------------------------------------- BraTS
def _check_brats(root: Path, report: CheckReport, wrap: Callable, overlay: Any) -> None:
    from weakseg.data.brats.reader import DEFAULT_CHANNELS, find_brats_subjects, load_subject

    _no_overlay(overlay, report)
    try:
        subjects = find_brats_subjects(root)
    except WeaksegError as exc:
        report.problems.append(str(exc))
        return
    tumour_subjects, shapes = 0, {}
    for subj in wrap(subjects):
        try:
            loaded = load_subject(subj, channels=DEFAULT_CHANNELS)
        except WeaksegError as exc:
            report.problems.append(str(exc))
            continue
        tumour_subjects += int(loaded.seg is not None and bool((loaded.seg > 0).any()))
        shapes[tuple(loaded.images.shape[1:])] = shapes.get(tuple(loaded.images.shape[1:]), 0) + 1
    if not report.problems and tumour_subjects == 0:
        report.problems.append(f"{root}: no subject has a tumour voxel in its seg file; the tumour class is never "
                               "annotated (were the seg files blanked?)")
    report.summary = {"subjects": len(subjects), "with_tumour": tumour_subjects,
                      "grades": sorted({s.grade or "none" for s in subjects}),
                      "shapes": {"x".join(map(str, k)): v for k, v in shapes.items()}}


def _check_brats_converted(root: Path, report: CheckReport, wrap: Callable, overlay: Any) -> None:
    from weakseg.data.brats.dataset import ROW_ARRAYS, read_index
    from weakseg.data.brats.preprocess import KIND_P
    from weakseg.data.brats.splits import SPLITS

    _no_overlay(overlay, report)
    try:
        index = read_index(root)
    except (WeaksegError, json.JSONDecodeError, OSError) as exc:
        report.problems.append(str(exc) if isinstance(exc, WeaksegError) else
                               f"{root / 'index.json'}: unreadable ({exc}); convert again")
        return
    n_channels = len(index.get("channel_names", []))
    rows: dict[str, int] = {}
    labelled_p = 0
    for split in SPLITS:
        folder = root / split
        split_info = index.get("splits", {}).get(split)
        if split_info is None:
            report.problems.append(f"{root / 'index.json'}: no split {split!r}; convert again")
            continue
        arrays: dict[str, np.ndarray] = {}
        for name in (*ROW_ARRAYS, "images", "masks"):
            path = folder / f"{name}.npy"
            try:
                arrays[name] = np.load(path, mmap_mode="r")
            except FileNotFoundError:
                report.problems.append(f"{path}: missing; the conversion did not finish, convert again")
            except (ValueError, OSError, EOFError) as exc:
                report.problems.append(f"{path}: unreadable or truncated ({exc}); convert again")
        if len(arrays) < len(ROW_ARRAYS) + 2:
            continue
        n = len(arrays["kind"])
        rows[split] = n
        wrong = [k for k, v in arrays.items() if len(v) != n]
        if wrong:
            report.problems.append(f"{folder}: {', '.join(f'{k}.npy' for k in wrong)} do not have {n} rows like "
                                   "kind.npy; convert again")
            continue
        img, msk = arrays["images"], arrays["masks"]
        if img.ndim != 4 or img.shape[1] != n_channels:
            report.problems.append(f"{folder / 'images.npy'}: shape {img.shape}, expected (rows, {n_channels}, H, W); "
                                   "convert again")
            continue
        if int(np.asarray(arrays["patient"]).max(initial=-1)) >= len(split_info.get("patients", [])):
            report.problems.append(f"{folder / 'patient.npy'}: patient index beyond index.json's list; convert again")
        bad_rows = []
        for start in wrap(range(0, n, _ROW_CHUNK)):
            block = np.asarray(img[start:start + _ROW_CHUNK], dtype=np.float32)
            bad = ~np.isfinite(block).reshape(len(block), -1).all(axis=1)
            bad_rows += (np.nonzero(bad)[0] + start).tolist()
            mvals = np.unique(np.asarray(msk[start:start + _ROW_CHUNK]))
            if not set(mvals.tolist()) <= {0, 1}:
                report.problems.append(f"{folder / 'masks.npy'}: values {sorted(set(mvals.tolist()) - {0, 1})} in rows "
                                       f"{start}..{start + len(block) - 1}; masks must be 0/1, convert again")
        if bad_rows:
            report.problems.append(f"{folder / 'images.npy'}: {len(bad_rows)} row(s) with NaN/Inf pixels (first "
                                   f"{bad_rows[:5]}); re-convert from the source files")
        if split == "train":
            kind, lab = np.asarray(arrays["kind"]), np.asarray(arrays["labelled"])
            labelled_p = int(((kind == KIND_P) & lab).sum())
            if labelled_p == 0:
                report.problems.append(f"{folder}: no labelled P slice in the training split, so the tumour class is "
                                       "never annotated; convert again with a larger --labelled-fraction")
    report.summary = {"rows": rows, "channels": index.get("channel_names"), "train_labelled_p": labelled_p}


# ------------------------------------------------------------------------------------------------- MNIST
def _check_mnist(root: Path, report: CheckReport, wrap: Callable, overlay: Any) -> None:
    from weakseg.data.mnist_sources import IDX_FILES, _find_idx, load_idx_folder, read_idx

    _no_overlay(overlay, report)
    for key, name in IDX_FILES.items():
        try:
            read_idx(_find_idx(root, name), ndim=3 if key.endswith("images") else 1)
        except WeaksegError as exc:
            report.problems.append(str(exc))
    if report.problems:
        return
    try:
        splits = load_idx_folder(root)             # pair agreement, sizes, label range
    except WeaksegError as exc:
        report.problems.append(str(exc))
        return
    report.summary = {"digits": splits.sizes}


def _no_overlay(overlay: Any, report: CheckReport) -> None:
    if overlay is not None:
        report.problems.append(f"--overlay {overlay}: status overlays apply to nnU-Net raw datasets only")


def _split_lines(message: str) -> list[str]:
    """A collected multi-problem error -> its problem lines (a one-line error stays one problem)."""
    head, _, rest = message.partition(":\n  ")
    return rest.split("\n  ") if rest else [message]
