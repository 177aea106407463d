"""The converted BraTS hemisphere-slice dataset: ``convert_brats`` writes it, ``BratsSliceSet`` reads it.

On-disk layout (every array a plain ``.npy``, opened with ``np.load(mmap_mode="r")``)::

    DST/
      index.json                 # channel names, options, patient lists and geometry, counts
      conversion_report.json     # what the conversion did (counts, labelled patients, options, version)
      splits.json                # patient ids per split (reusable as a split file)
      train/ valid/ test/
        images.npy       (N, C, H, W) float16   normalised hemisphere slices
        masks.npy        (N, 1, H, W) uint8     target region (ground truth, every row)
        patient.npy      (N,) int32             index into index.json splits[split].patients
        z.npy            (N,) int16             canonical axial slice
        side.npy         (N,) uint8             0 = x_lo (patient left), 1 = x_hi (right)
        kind.npy         (N,) int8              1 = P, 0 = A, -1 = other (little tumour or little brain)
        labelled.npy     (N,) bool              mask usable for training (whole-patient labelled fraction)
        tumour_area.npy  (N,) int32, brain_area.npy (N,) int32   pixels

Training keeps only P and A rows; validation and test keep every slice of every patient (for volume
rebuild). ``convert_brats`` reads and validates every subject before writing anything, writes into
``DST.tmp-<pid>`` and renames it to ``DST`` only when complete.
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
import torch
from torch import Tensor

import weakseg
from weakseg.data.batch import Batch
from weakseg.data.brats_prep import (
    KIND_A,
    KIND_OTHER,
    KIND_P,
    REFERENCE_PROPORTIONS,
    SIDES,
    SPLITS,
    HemisphereLayout,
    choose_labelled_patients,
    prepare_subject,
    split_patients,
)
from weakseg.data.formats.brats import (
    DEFAULT_CHANNELS,
    REGIONS,
    BratsSubject,
    find_brats_subjects,
    load_subject,
    raise_problems,
)
from weakseg.data.status import ABSENT, MASK, PRESENT, UNKNOWN
from weakseg.errors import WeaksegError
from weakseg.fsutil import check_destination, swap_in_folder

log = logging.getLogger(__name__)

FORMAT_NAME = "weakseg-brats-hemispheres"
FORMAT_VERSION = 1
ROW_ARRAYS: tuple[str, ...] = ("patient", "z", "side", "kind", "labelled", "tumour_area", "brain_area")


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


def read_index(root: str | os.PathLike) -> dict[str, Any]:
    """``index.json`` of a converted dataset, checked to be one."""
    root = Path(root)
    path = root / "index.json"
    if not path.is_file():
        raise WeaksegError(f"{root}: no index.json; this is not a converted BraTS dataset "
                           f"(run `weakseg convert brats SRC DST` first, or the conversion did not finish)")
    index = json.loads(path.read_text())
    if index.get("format") != FORMAT_NAME:
        raise WeaksegError(f"{path}: format {index.get('format')!r} is not {FORMAT_NAME!r}")
    return index


def layout_of(index: dict[str, Any], patient_id: str) -> HemisphereLayout:
    """The hemisphere cut of one patient (for rebuilding volumes with ``brats_prep.volume_from_slices``)."""
    d = index["patients"][patient_id]["layout"]
    return HemisphereLayout(tuple(d["canonical_shape"]), int(d["midline"]), int(d["width"]), bool(d["flip_x_hi"]))


class BratsSliceSet:
    """One split of a converted BraTS dataset, as a ``SampleSet`` read lazily from memory maps.

    Status (one class, ``tumour``): A -> ``absent``; P of a labelled patient -> ``mask``; P of an
    unlabelled patient -> ``present``. Validation and test rows are all labelled (their P and other rows
    are ``mask``). ``include="pa"`` keeps P and A rows (training and the
    reference's slice-level scoring); ``"all"`` keeps every stored row (volume rebuild).

    Shape:
        status: (N, 1) int8; has_mask: (N,) bool; mask_nonempty: (N, 1) bool; batch images (B, C, H, W).
    """

    class_names: tuple[str, ...] = ("tumour",)

    def __init__(self, root: str | os.PathLike, split: str, *, include: str = "pa") -> None:
        if split not in SPLITS:
            raise WeaksegError(f"split {split!r}: use one of {', '.join(SPLITS)}")
        if include not in ("pa", "all"):
            raise WeaksegError(f"include {include!r}: use 'pa' or 'all'")
        self.root = Path(root)
        self.split = split
        self.include = include
        self.index = read_index(self.root)
        self.channel_names = tuple(self.index["channel_names"])
        self.patients = tuple(self.index["splits"][split]["patients"])
        folder = self.root / split
        cols = {k: np.load(folder / f"{k}.npy") for k in ROW_ARRAYS}
        self._images = np.load(folder / "images.npy", mmap_mode="r")     # (N_all, C, H, W)
        self._masks = np.load(folder / "masks.npy", mmap_mode="r")       # (N_all, 1, H, W)
        rows = np.nonzero(cols["kind"] != KIND_OTHER)[0] if include == "pa" else np.arange(len(cols["kind"]))
        self.rows = rows
        for k, v in cols.items():
            setattr(self, k, v[rows])
        status = np.full(len(rows), UNKNOWN, dtype=np.int8)
        status[self.kind == KIND_P] = PRESENT
        status[self.labelled & (self.kind != KIND_A)] = MASK
        status[self.kind == KIND_A] = ABSENT                             # A rows: known empty, no mask needed
        given = status == MASK
        self.status = torch.from_numpy(status)[:, None]                  # (N, 1)
        self.has_mask = torch.from_numpy(given)                          # (N,)
        self.mask_nonempty = torch.from_numpy((self.tumour_area > 0) & given)[:, None]   # (N, 1)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def in_channels(self) -> int:
        return int(self._images.shape[1])

    @property
    def spatial_shape(self) -> tuple[int, int]:
        return int(self._images.shape[2]), int(self._images.shape[3])

    def case_id(self, i: int) -> str:
        """``<patient>_<side>_z<z>`` of row ``i``."""
        return f"{self.patients[self.patient[i]]}_{SIDES[self.side[i]]}_z{int(self.z[i]):03d}"

    def _read(self, array: np.ndarray, idx: np.ndarray) -> np.ndarray:
        file_rows = self.rows[idx]
        order = np.argsort(file_rows, kind="stable")                     # read in file order, then undo
        undo = np.empty_like(order)
        undo[order] = np.arange(len(order))
        return np.asarray(array[file_rows[order]])[undo]

    def images_at(self, idx: np.ndarray) -> np.ndarray:
        """Images of rows ``idx`` as float32. Shape: idx (B,) -> (B, C, H, W)."""
        return self._read(self._images, np.asarray(idx, dtype=np.int64)).astype(np.float32)

    def ground_truth_at(self, idx: np.ndarray) -> np.ndarray:
        """Full ground-truth masks of rows ``idx``, labelled or not: for evaluation and export only, never
        for training (``batch`` hides unlabelled masks). Shape: idx (B,) -> (B, 1, H, W) uint8."""
        return self._read(self._masks, np.asarray(idx, dtype=np.int64))

    def batch(self, index: Tensor) -> Batch:
        """Read rows ``index`` (B,) from disk; masks are zeros where the row has no usable mask."""
        idx = index.to(torch.int64).numpy()
        images = self.images_at(idx)                                     # (B, C, H, W)
        has = self.has_mask[idx]
        masks = self.ground_truth_at(idx) * has.numpy()[:, None, None, None].astype(np.uint8)   # (B, 1, H, W)
        return Batch(image=torch.from_numpy(images), status=self.status[idx], mask=torch.from_numpy(masks),
                     has_mask=has, index=torch.from_numpy(idx.copy()),
                     case_ids=tuple(self.case_id(i) for i in idx.tolist()))
