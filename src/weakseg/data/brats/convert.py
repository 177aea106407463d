"""``weakseg convert brats``: a BraTS folder -> the hemisphere-slice dataset that ``dataset`` reads.

``convert_brats`` reads and validates every subject before writing anything, writes into
``DST.tmp-<pid>`` and renames it to ``DST`` only when complete. Training keeps only P and A rows;
validation and test keep every slice of every patient (for volume rebuild). The layout written is
described in ``weakseg.data.brats.dataset``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import weakseg
from weakseg.data.brats.dataset import FORMAT_NAME, FORMAT_VERSION, ROW_ARRAYS
from weakseg.data.brats.preprocess import KIND_A, KIND_OTHER, KIND_P, SIDES, HemisphereLayout, prepare_subject
from weakseg.data.brats.reader import DEFAULT_CHANNELS, REGIONS, BratsSubject, find_brats_subjects, load_subject
from weakseg.data.brats.splits import REFERENCE_PROPORTIONS, SPLITS, choose_labelled_patients, split_patients
from weakseg.errors import WeaksegError, raise_problems
from weakseg.fsutil import check_destination, swap_in_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BratsConvertOptions:
    """Options of ``weakseg convert brats`` (CLI flag = field name with '-' for '_')."""

    channels: tuple[str, ...] = DEFAULT_CHANNELS
    region: str = "whole_tumour"                 # whole_tumour {1,2,4} | tumour_core {1,4} | enhancing {4}
    normalization: str = "per_modality"          # per_modality | pooled (the reference)
    bias_correction: str = "none"                # none | n4 (brain-masked)
    clip: bool = True                            # clip normalised brain voxels to [-1, 1]
    brain_threshold: float = 0.25                # b: brain area / slice area
    tumour_threshold: float = 0.04               # t_area: tumour area / brain area
    midline: str = "grid"                        # grid (reference) | brain (centre of the brain's x-extent)
    flip_x_hi: bool = False
    labelled_fraction: float = 0.01              # of training P slices, by whole patient (genseg.md §10.5)
    data_seed: int = 0                           # labelled-patient draw
    split_seed: int = 0                          # patient split draw
    proportions: tuple[int, int, int] = REFERENCE_PROPORTIONS
    split_file: str | None = None                # JSON {"train": [...], "valid": [...], "test": [...]}
    image_dtype: str = "float16"

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "proportions", tuple(int(p) for p in self.proportions))
        checks = {
            "region": (self.region, tuple(REGIONS)),
            "normalization": (self.normalization, ("per_modality", "pooled")),
            "bias_correction": (self.bias_correction, ("none", "n4")),
            "midline": (self.midline, ("grid", "brain")),
            "image_dtype": (self.image_dtype, ("float16", "float32")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise WeaksegError(f"convert brats: {name} {value!r} is not one of {', '.join(allowed)}")
        for name in ("brain_threshold", "tumour_threshold", "labelled_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise WeaksegError(f"convert brats: {name} {v} must lie in [0, 1] (a fraction, not a percentage)")


@dataclass
class _Plan:
    """What pass 1 learnt about one subject (small: no images kept)."""

    subject: BratsSubject
    layout: HemisphereLayout
    kind: np.ndarray                    # (Z, 2) int8
    tumour_area: np.ndarray             # (Z, 2)
    brain_area: np.ndarray              # (Z, 2)
    shape: tuple[int, ...]
    affine: np.ndarray
    canonical_affine: np.ndarray
    axcodes: tuple[str, ...]
    split: str = ""
    labelled: bool = True
    rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))   # (n, 2) (z, side)

    @property
    def n_p(self) -> int:
        return int((self.kind == KIND_P).sum())


def _read_split_file(path: str | os.PathLike, known: set[str]) -> dict[str, list[str]]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise WeaksegError(f"{path}: split file not found; give a JSON file with train/valid/test lists") from None
    except json.JSONDecodeError as exc:
        raise WeaksegError(f"{path}: not valid JSON ({exc}); fix the split file") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(s), list) for s in SPLITS):
        raise WeaksegError(f"{path}: split file needs lists 'train', 'valid' and 'test' of patient ids")
    seen: dict[str, str] = {}
    problems = []
    for s in SPLITS:
        for pid in data[s]:
            if pid in seen:
                problems.append(f"patient {pid} is in both {seen[pid]} and {s}")
            seen[pid] = s
            if pid not in known:
                problems.append(f"patient {pid} ({s}) has no subject folder")
    raise_problems(problems, what=f"split file {path}")
    return {s: list(data[s]) for s in SPLITS}


def _plan_subject(subj: BratsSubject, opts: BratsConvertOptions) -> _Plan:
    loaded = load_subject(subj, channels=opts.channels)
    prep = prepare_subject(loaded.images, loaded.seg, loaded.affine, region_labels=REGIONS[opts.region],
                           brain_threshold=opts.brain_threshold, tumour_threshold=opts.tumour_threshold,
                           midline=opts.midline, flip_x_hi=opts.flip_x_hi, with_images=False)
    return _Plan(subject=subj, layout=prep.layout, kind=prep.kind, tumour_area=prep.tumour_area,
                 brain_area=prep.brain_area, shape=tuple(loaded.seg.shape), affine=loaded.affine,
                 canonical_affine=prep.canonical_affine, axcodes=prep.axcodes)


def convert_brats(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    options: BratsConvertOptions | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Convert a BraTS folder into the hemisphere-slice dataset at ``dst``; returns the conversion report.

    Pass 1 reads and checks every subject (all problems of all subjects -> one WeaksegError, nothing
    written) and classifies its slices; then splits and labelled patients are drawn; pass 2 reads each
    subject again, normalises and writes its slices straight into memory-mapped ``.npy`` files.
    """
    opts = options or BratsConvertOptions()
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if dst.exists() and not overwrite:
        raise WeaksegError(f"{dst}: already exists; choose another destination or pass overwrite")
    check_destination(dst, verb=f"convert brats {dst}")          # before reading every subject, not after
    subjects = find_brats_subjects(src, channels=opts.channels)
    split_ids = (_read_split_file(opts.split_file, {s.subject_id for s in subjects}) if opts.split_file else None)

    # ---- pass 1: validate everything, classify slices (no output yet)
    plans: dict[str, _Plan] = {}
    problems: list[str] = []
    for subj in _progress(subjects, progress, "checking"):
        try:
            plans[subj.subject_id] = _plan_subject(subj, opts)
        except WeaksegError as exc:
            problems.append(str(exc))
    if plans:
        ref_id, ref = next(iter(plans.items()))
        for pid, p in plans.items():
            if p.layout.slice_shape != ref.layout.slice_shape:
                problems.append(f"subject {pid}: hemisphere slices {p.layout.slice_shape} differ from "
                                f"{ref_id}'s {ref.layout.slice_shape}; resample all subjects to one grid")
    raise_problems(problems, what=f"convert brats {src}")

    # ---- splits and labelled patients
    if split_ids is None:
        groups: dict[str, list[str]] = {}
        for s in subjects:
            groups.setdefault(s.grade or "all", []).append(s.subject_id)
        split_ids = split_patients(groups, seed=opts.split_seed, proportions=opts.proportions)
    for s in SPLITS:
        for pid in split_ids[s]:
            plans[pid].split = s
    train = [plans[pid] for pid in split_ids["train"]]
    labelled = choose_labelled_patients([p.n_p for p in train], fraction=opts.labelled_fraction,
                                        seed=opts.data_seed)
    for p, lab in zip(train, labelled):
        p.labelled = bool(lab)
    for p in plans.values():
        zs, sides = np.meshgrid(np.arange(p.kind.shape[0]), np.arange(2), indexing="ij")    # (Z, 2)
        keep = p.kind != KIND_OTHER if p.split == "train" else np.ones_like(p.kind, dtype=bool)
        p.rows = np.stack([zs[keep], sides[keep]], 1)                                      # (n, 2)
    n_train_p = sum(p.n_p for p in train)
    n_lab_p = sum(p.n_p for p in train if p.labelled)
    actual = n_lab_p / n_train_p if n_train_p else 0.0
    lab_ids = [p.subject.subject_id for p in train if p.labelled]
    log.info("convert brats: %d labelled training patients (%s); labelled P slices %d / %d = %.4f",
             len(lab_ids), ", ".join(lab_ids), n_lab_p, n_train_p, actual)

    # ---- pass 2: write into DST.tmp-<pid>, rename when complete
    tmp = dst.parent / f"{dst.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
        index = _write_splits(tmp, plans, split_ids, opts, progress)
        report = {
            "weakseg_version": weakseg.__version__,
            "format": FORMAT_NAME,
            "source": str(src.resolve()),
            "destination": str(dst.resolve()),
            "n_subjects": len(subjects),
            "n_subjects_used": sum(len(split_ids[s]) for s in SPLITS),
            "grades": {g: sum(1 for s in subjects if (s.grade or "none") == g)
                       for g in sorted({s.grade or "none" for s in subjects})},
            "splits": {s: index["splits"][s]["counts"] for s in SPLITS},
            "labelled_patients": lab_ids,
            "labelled_fraction_requested": opts.labelled_fraction,
            "labelled_fraction_actual": actual,
            "train_p_slices": n_train_p,
            "train_labelled_p_slices": n_lab_p,
            "options": _jsonable(asdict(opts)),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        _write_json(tmp / "index.json", index)
        _write_json(tmp / "splits.json", {s: list(split_ids[s]) for s in SPLITS})
        _write_json(tmp / "conversion_report.json", report)
        swap_in_folder(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _write_splits(tmp: Path, plans: dict[str, _Plan], split_ids: dict[str, list[str]],
                  opts: BratsConvertOptions, progress: bool) -> dict[str, Any]:
    first = next(iter(plans.values()))
    h, w = first.layout.slice_shape
    c = len(opts.channels)
    index: dict[str, Any] = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "weakseg_version": weakseg.__version__,
        "channel_names": list(opts.channels), "class_names": ["tumour"],
        "region": opts.region, "region_labels": list(REGIONS[opts.region]),
        "slice_shape": [h, w], "image_dtype": opts.image_dtype, "sides": list(SIDES),
        "kinds": {"P": KIND_P, "A": KIND_A, "other": KIND_OTHER},
        "options": _jsonable(asdict(opts)), "splits": {}, "patients": {},
    }
    for split in SPLITS:
        members = [plans[pid] for pid in split_ids[split]]
        n = sum(len(p.rows) for p in members)
        folder = tmp / split
        folder.mkdir()
        images = np.lib.format.open_memmap(folder / "images.npy", mode="w+", dtype=opts.image_dtype,
                                           shape=(n, c, h, w))
        masks = np.lib.format.open_memmap(folder / "masks.npy", mode="w+", dtype=np.uint8, shape=(n, 1, h, w))
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ROW_ARRAYS}
        at = 0
        for pi, p in enumerate(_progress(members, progress, f"writing {split}")):
            loaded = load_subject(p.subject, channels=opts.channels)
            prep = prepare_subject(loaded.images, loaded.seg, loaded.affine, region_labels=REGIONS[opts.region],
                                   normalization=opts.normalization, bias_correction=opts.bias_correction,
                                   clip=opts.clip, brain_threshold=opts.brain_threshold,
                                   tumour_threshold=opts.tumour_threshold, midline=opts.midline,
                                   flip_x_hi=opts.flip_x_hi)
            if not np.array_equal(prep.kind, p.kind):
                raise WeaksegError(f"subject {p.subject.subject_id}: files changed during conversion; run again")
            zs, sides = p.rows[:, 0], p.rows[:, 1]
            m = len(zs)
            images[at:at + m] = prep.images[zs, sides]                   # (m, C, H, W)
            masks[at:at + m, 0] = prep.mask[zs, sides]                   # (m, H, W)
            at += m
            lab = p.labelled if split == "train" else True              # valid/test: ground truth is scored
            cols["patient"].append(np.full(m, pi, dtype=np.int32))
            cols["z"].append(zs.astype(np.int16))
            cols["side"].append(sides.astype(np.uint8))
            cols["kind"].append(p.kind[zs, sides].astype(np.int8))
            cols["labelled"].append(np.full(m, lab, dtype=bool))
            cols["tumour_area"].append(p.tumour_area[zs, sides].astype(np.int32))
            cols["brain_area"].append(p.brain_area[zs, sides].astype(np.int32))
            index["patients"][p.subject.subject_id] = {
                "split": split, "grade": p.subject.grade, "labelled": lab if split == "train" else None,
                "n_p": p.n_p, "n_a": int((p.kind == KIND_A).sum()), "n_rows": m,
                "shape": list(p.shape), "affine": p.affine.tolist(), "axcodes": list(p.axcodes),
                "canonical_affine": p.canonical_affine.tolist(), "layout": _jsonable(p.layout.to_dict()),
                "files": {k: str(v) for k, v in p.subject.files.items()},
            }
        images.flush()
        masks.flush()
        del images, masks
        dtypes = {"patient": np.int32, "z": np.int16, "side": np.uint8, "kind": np.int8, "labelled": bool,
                  "tumour_area": np.int32, "brain_area": np.int32}
        arrays = {k: (np.concatenate(v) if v else np.zeros(0, dtype=dtypes[k])) for k, v in cols.items()}
        for k, v in arrays.items():
            np.save(folder / f"{k}.npy", v)
        kind, lab = arrays["kind"], arrays["labelled"]
        index["splits"][split] = {
            "patients": list(split_ids[split]),
            "counts": {"patients": len(members), "rows": n, "p": int((kind == KIND_P).sum()),
                       "a": int((kind == KIND_A).sum()), "other": int((kind == KIND_OTHER).sum()),
                       "labelled_p": int(((kind == KIND_P) & lab).sum()),
                       "labelled_patients": sum(1 for p in members if p.labelled) if split == "train"
                       else len(members)},
        }
    return index


def _progress(items: Sequence, on: bool, desc: str):
    if not on:
        return items
    from tqdm import tqdm  # noqa: PLC0415

    return tqdm(items, desc=desc, unit="subject")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")
