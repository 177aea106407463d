"""The nnU-Net v2 raw layout (``ecosystem.md`` §4): read, validate, index and write it.

::

    DatasetXXX_Name/
      dataset.json              # channel_names, labels (name -> int), numTraining, file_ending [, weakseg]
      imagesTr/{case}_{XXXX}.nii.gz
      labelsTr/{case}.nii.gz
      imagesTs/{case}_{XXXX}.nii.gz

The optional top-level ``weakseg`` block (label status per case and class, ``smile.md`` §15.4) is kept
as the raw dict in ``NnunetDataset.weakseg``; ``attach_statuses`` resolves it with
``weakseg.data.status.resolve_statuses`` into ``NnunetCase.status`` (every class ``mask`` without a block).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import weakseg
from weakseg.data.formats.nifti import geometry_problem, load_volume, read_header, save_volume
from weakseg.errors import WeaksegError, raise_problems
from weakseg.fsutil import build_folder, check_destination

REQUIRED_KEYS: tuple[str, ...] = ("channel_names", "labels", "numTraining", "file_ending")
SPLIT_FOLDERS: dict[str, tuple[str, str | None]] = {"train": ("imagesTr", "labelsTr"), "test": ("imagesTs", None)}
_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})$")


@dataclass
class NnunetDataset:
    """A parsed ``dataset.json``; ``weakseg`` is the raw optional extension block (None when absent)."""

    root: Path
    channel_names: dict[str, str]
    labels: dict[str, Any]
    num_training: int
    file_ending: str
    weakseg: dict[str, Any] | None
    raw: dict[str, Any]

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Foreground classes in label-value order (``background`` and ``ignore`` left out)."""
        items = [(v, k) for k, v in self.labels.items() if k not in ("background", "ignore") and isinstance(v, int)]
        return tuple(k for _, k in sorted(items))

    def label_values(self) -> set[int]:
        """Every integer a label map may hold (``ignore`` included)."""
        out: set[int] = set()
        for v in self.labels.values():
            out.update(v if isinstance(v, (list, tuple)) else [v])
        return {int(v) for v in out}


@dataclass
class NnunetCase:
    """One case: its channel files in channel order and its label file (None in ``imagesTs``)."""

    case_id: str
    split: str
    images: tuple[Path, ...]
    label: Path | None
    # Per-class label status {class: mask|present|absent|unknown}, set by ``attach_statuses`` from the
    # dataset.json ``weakseg`` block; None until then. Never inferred from the label map.
    status: dict[str, str] | None = None


def read_dataset_json(root: str | os.PathLike) -> NnunetDataset:
    """Parse and check ``root/dataset.json`` (the four keys nnU-Net requires, with sane values)."""
    root = Path(root)
    path = root / "dataset.json"
    if not path.is_file():
        raise WeaksegError(f"{path}: not found; an nnU-Net raw dataset folder needs a dataset.json "
                           f"(keys {', '.join(REQUIRED_KEYS)})")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WeaksegError(f"{path}: not valid JSON ({exc}); fix the file") from None
    if not isinstance(raw, dict):
        raise WeaksegError(f"{path}: top level must be a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise WeaksegError(f"{path}: missing required key(s) {', '.join(repr(k) for k in missing)}; "
                           f"nnU-Net v2 needs {', '.join(REQUIRED_KEYS)} (MSD 'modality' -> 'channel_names')")
    ch, labels = raw["channel_names"], raw["labels"]
    if not isinstance(ch, dict) or not ch or sorted(ch, key=int) != [str(i) for i in range(len(ch))]:
        raise WeaksegError(f"{path}: 'channel_names' must map '0', '1', ... to names, got {ch!r}")
    if not isinstance(labels, dict) or labels.get("background") != 0:
        raise WeaksegError(f"{path}: 'labels' must map names to integers with \"background\": 0 "
                           f"(nnU-Net v2 order: name -> int), got {labels!r}")
    for k, v in labels.items():
        vals = v if isinstance(v, (list, tuple)) else [v]
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in vals):
            raise WeaksegError(f"{path}: label {k!r} has value {v!r}; labels map names to integers")
    if not isinstance(raw["numTraining"], int) or raw["numTraining"] < 0:
        raise WeaksegError(f"{path}: 'numTraining' must be a non-negative integer, got {raw['numTraining']!r}")
    if not isinstance(raw["file_ending"], str) or not raw["file_ending"].startswith("."):
        raise WeaksegError(f"{path}: 'file_ending' must look like \".nii.gz\", got {raw['file_ending']!r}")
    block = raw.get("weakseg")
    if block is not None and not isinstance(block, dict):
        raise WeaksegError(f"{path}: 'weakseg' must be an object (smile.md §15.4), got {type(block).__name__}")
    return NnunetDataset(root=root, channel_names={str(k): str(v) for k, v in ch.items()}, labels=dict(labels),
                         num_training=raw["numTraining"], file_ending=raw["file_ending"], weakseg=block, raw=raw)


def list_cases(root: str | os.PathLike, split: str = "train", *,
               dataset: NnunetDataset | None = None) -> list[NnunetCase]:
    """Cases of ``imagesTr`` (``split="train"``, with labels) or ``imagesTs`` (``"test"``), sorted by id.

    Every problem (missing channel, unexpected channel index, missing or orphan label, numTraining
    mismatch) is collected into one WeaksegError. A missing ``imagesTs`` gives an empty list.
    """
    if split not in SPLIT_FOLDERS:
        raise WeaksegError(f"split {split!r}: use 'train' (imagesTr) or 'test' (imagesTs)")
    root = Path(root)
    ds = dataset or read_dataset_json(root)
    img_dir, lab_dir = (root / f if f else None for f in SPLIT_FOLDERS[split])
    if not img_dir.is_dir():
        if split == "test":
            return []
        raise WeaksegError(f"{img_dir}: folder not found; an nnU-Net raw dataset keeps training images there")
    ending = ds.file_ending
    found: dict[str, dict[int, Path]] = {}
    problems: list[str] = []
    for f in sorted(img_dir.iterdir()):
        if f.name.startswith(".") or not f.name.endswith(ending):     # hidden files, macOS '._*' copies
            continue
        m = _CHANNEL_RE.match(f.name[: -len(ending)])
        if not m:
            problems.append(f"{f}: name lacks the _XXXX channel suffix (e.g. case_0000{ending})")
            continue
        found.setdefault(m["case"], {})[int(m["ch"])] = f
    n_ch = ds.n_channels
    cases = []
    for cid, chans in sorted(found.items()):
        missing = [i for i in range(n_ch) if i not in chans]
        extra = sorted(i for i in chans if i >= n_ch)
        if missing:
            problems.append(f"case {cid}: missing channel file(s) "
                            + ", ".join(f"{cid}_{i:04d}{ending}" for i in missing))
        if extra:
            problems.append(f"case {cid}: channel(s) {extra} beyond the {n_ch} in channel_names")
        label = None
        if lab_dir is not None:
            label = lab_dir / f"{cid}{ending}"
            if not label.is_file():
                problems.append(f"case {cid}: label {label} not found (nnU-Net needs one per training case)")
        cases.append(NnunetCase(cid, split, tuple(chans[i] for i in range(n_ch) if i in chans), label))
    if lab_dir is not None and lab_dir.is_dir():
        for f in sorted(lab_dir.iterdir()):
            if f.name.endswith(ending) and not f.name.startswith(".") and f.name[: -len(ending)] not in found:
                problems.append(f"{f}: label without images in {img_dir.name}")
    if split == "train" and len(cases) != ds.num_training:
        problems.append(f"dataset.json numTraining is {ds.num_training} but {img_dir.name} holds {len(cases)} "
                        f"case(s); fix numTraining")
    raise_problems(problems, what=str(root), written=False)
    return cases


def attach_statuses(cases: Sequence[NnunetCase], dataset: NnunetDataset, *,
                    overlay: Mapping[str, Any] | None = None) -> dict[str, dict[str, str]]:
    """Resolve the ``weakseg`` block (and an optional overlay) for ``cases`` and set each ``case.status``.

    Resolution order and errors are ``weakseg.data.status.resolve_statuses``'s (per-case status > source >
    default_status > ``mask``); a case named in the block but absent from ``cases`` is an error.
    Returns {case_id: {class: status}}.
    """
    from weakseg.data.status import resolve_statuses   # noqa: PLC0415 (status imports torch; keep this light)

    resolved = resolve_statuses(dataset.weakseg, [c.case_id for c in cases], dataset.class_names, overlay=overlay,
                                where=f"{dataset.root / 'dataset.json'}: weakseg")
    for c in cases:
        c.status = dict(resolved[c.case_id])
    return resolved


def check_case(case: NnunetCase, dataset: NnunetDataset, *, read_voxels: bool = True) -> list[str]:
    """Problems of one case: channel/label geometry; with ``read_voxels``, NaN/Inf, undeclared labels and
    voxels of a class whose resolved status (``case.status``) is ``absent``."""
    problems = []
    try:
        geoms = [(p, *read_header(p)) for p in case.images]
        if case.label is not None:
            geoms.append((case.label, *read_header(case.label)))
    except WeaksegError as exc:
        return [str(exc)]
    ref_path, ref_shape, ref_aff = geoms[0]
    for p, shape, aff in geoms[1:]:
        prob = geometry_problem(shape, aff, ref_shape, ref_aff, names=(p.name, ref_path.name))
        if prob:
            problems.append(f"case {case.case_id}: {prob}")
    if problems or not read_voxels:
        return problems
    try:
        for p in case.images:
            load_volume(p, kind="image")
        if case.label is not None:
            values = set(np.unique(load_volume(case.label, kind="label").array).tolist())
            extra = sorted(values - dataset.label_values())
            if extra:
                problems.append(f"case {case.case_id}: {case.label.name} holds label value(s) {extra} not "
                                f"declared in dataset.json labels {dataset.labels}")
            for cls, st in (case.status or {}).items():
                v = dataset.labels.get(cls)
                if st == "absent" and isinstance(v, int) and v in values:
                    problems.append(f"case {case.case_id}: {case.label.name} holds voxels of {cls!r} (value {v}) "
                                    f"but its status is 'absent'; fix the label map or the weakseg block")
    except WeaksegError as exc:
        problems.append(str(exc))
    return problems


def convert_nnunet(src: str | os.PathLike, dst: str | os.PathLike | None = None, *, read_voxels: bool = True,
                   overwrite: bool = False) -> dict[str, Any]:
    """``weakseg convert nnunet``: validate an existing raw dataset and (with ``dst``) write its index.

    The dataset is used in place; ``dst/index.json`` lists cases (paths relative to ``src``), their
    geometry, and the raw ``weakseg`` block. All problems -> one WeaksegError before anything is written.
    """
    src = Path(src)
    if dst is not None:
        check_destination(dst, verb=f"convert nnunet {dst}")
    ds = read_dataset_json(src)
    problems: list[str] = []
    cases: list[NnunetCase] = []
    for split in SPLIT_FOLDERS:
        try:
            cases += list_cases(src, split, dataset=ds)
        except WeaksegError as exc:
            problems.append(str(exc))
    if not problems:
        try:
            attach_statuses(cases, ds)
        except WeaksegError as exc:
            problems.append(str(exc))
    for case in cases:
        problems += check_case(case, ds, read_voxels=read_voxels)
    raise_problems(problems, what=f"convert nnunet {src}")
    records = []
    for case in cases:
        shape, affine = read_header(case.images[0])
        records.append({
            "case_id": case.case_id, "split": case.split,
            "images": [str(p.relative_to(src)) for p in case.images],
            "label": str(case.label.relative_to(src)) if case.label else None,
            "shape": list(shape), "affine": affine.tolist(),
            "status": case.status,
        })
    report = {
        "weakseg_version": weakseg.__version__, "format": "weakseg-nnunet-index", "source": str(src.resolve()),
        "channel_names": ds.channel_names, "labels": ds.labels, "class_names": list(ds.class_names),
        "n_train": sum(c.split == "train" for c in cases), "n_test": sum(c.split == "test" for c in cases),
        "weakseg": ds.weakseg, "voxels_checked": read_voxels,
        "status_counts": {cls: {w: sum(1 for c in cases if (c.status or {}).get(cls) == w)
                                for w in ("mask", "present", "absent", "unknown")} for cls in ds.class_names},
    }
    if dst is not None:
        dst = Path(dst)
        _atomic_dir(dst, overwrite, lambda tmp: _write_json(tmp / "index.json", {**report, "cases": records}))
    return report


# ----------------------------------------------------------------------------------------------- writing
def write_dataset_json(root: str | os.PathLike, *, channel_names: Sequence[str] | Mapping[str, str],
                       labels: Mapping[str, int], num_training: int, file_ending: str = ".nii.gz",
                       weakseg_block: Mapping[str, Any] | None = None,
                       training: Sequence[Mapping[str, Any]] | None = None, **extra: Any) -> Path:
    """Write ``dataset.json``; ``training`` adds the MSD-style list MONAI's ``load_decathlon_datalist`` reads."""
    if not isinstance(channel_names, Mapping):
        channel_names = {str(i): n for i, n in enumerate(channel_names)}
    data: dict[str, Any] = {"channel_names": dict(channel_names), "labels": dict(labels),
                            "numTraining": int(num_training), "file_ending": file_ending, **extra}
    if training is not None:
        data["training"] = list(training)
    if weakseg_block is not None:
        data["weakseg"] = dict(weakseg_block)
    path = Path(root) / "dataset.json"
    _write_json(path, data)
    return path


def write_case(root: str | os.PathLike, case_id: str, channels: Sequence[np.ndarray], label: np.ndarray | None,
               *, affine: np.ndarray, header: Any = None, split: str = "train", file_ending: str = ".nii.gz",
               image_dtype: Any = np.float32, label_dtype: Any = np.uint8) -> tuple[list[Path], Path | None]:
    """Write one case's channel files (``{case}_{XXXX}``) and its label, all on the grid of ``affine``.

    Shape:
        channels: C arrays (I, J, K); label: (I, J, K) integers or None.
    """
    img_folder, lab_folder = SPLIT_FOLDERS[split] if split in SPLIT_FOLDERS else (None, None)
    if img_folder is None:
        raise WeaksegError(f"split {split!r}: use 'train' or 'test'")
    root = Path(root)
    paths = [save_volume(ch, (affine, header), root / img_folder / f"{case_id}_{i:04d}{file_ending}",
                         dtype=image_dtype) for i, ch in enumerate(channels)]
    lab_path = None
    if label is not None:
        folder = lab_folder or "labelsTs"     # labelsTs: not read by nnU-Net, kept for scoring
        lab_path = save_volume(label, (affine, header), root / folder / f"{case_id}{file_ending}", dtype=label_dtype)
    return paths, lab_path


def write_nnunet_dataset(
    root: str | os.PathLike,
    cases: Iterable[Mapping[str, Any]],
    *,
    channel_names: Sequence[str],
    labels: Mapping[str, int],
    weakseg_block: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    msd_training_list: bool = True,
    splits_final: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Write a complete raw dataset atomically (``root.tmp-<pid>`` renamed at the end).

    Each case is a mapping with ``case_id``, ``channels`` (list of (I, J, K) arrays), ``label`` ((I, J, K)
    or None), ``affine`` and optional ``header`` and ``split`` ('train' default, or 'test').
    ``splits_final`` ({"train": [...], "valid": [...]}, case ids) becomes nnU-Net's one-fold
    ``splits_final.json``; like ``weakseg_block`` it is read after the cases, so a caller may fill it
    while ``cases`` is iterated.
    """
    def build(tmp: Path) -> None:
        _build_dataset(tmp, cases, channel_names=channel_names, labels=labels, weakseg_block=weakseg_block,
                       msd_training_list=msd_training_list)
        if splits_final is not None:
            _write_json(tmp / "splits_final.json", [{"train": list(splits_final["train"]),
                                                     "val": list(splits_final["valid"])}])

    _atomic_dir(Path(root), overwrite, build)
    return Path(root)


def _build_dataset(tmp: Path, cases: Iterable[Mapping[str, Any]], *, channel_names: Sequence[str],
                   labels: Mapping[str, int], weakseg_block: Mapping[str, Any] | None,
                   msd_training_list: bool) -> None:
    # dataset.json is written after the cases, so a block filled while iterating ``cases`` is complete.
    n_train, training = 0, []
    for case in cases:
        split = case.get("split", "train")
        imgs, lab = write_case(tmp, case["case_id"], case["channels"], case.get("label"), affine=case["affine"],
                               header=case.get("header"), split=split)
        if split == "train":
            n_train += 1
            training.append({"image": [str(p.relative_to(tmp)) for p in imgs],
                             "label": str(lab.relative_to(tmp)) if lab else None})
    for sub in ("imagesTr", "labelsTr"):
        (tmp / sub).mkdir(exist_ok=True)
    write_dataset_json(tmp, channel_names=channel_names, labels=labels, num_training=n_train,
                       weakseg_block=weakseg_block, training=training if msd_training_list else None)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def _atomic_dir(dst: Path, overwrite: bool, build) -> None:
    """Run ``build(tmp)`` into ``dst.tmp-<pid>``, then rename to ``dst``; nothing half-written remains."""
    if dst.exists() and not overwrite:
        raise WeaksegError(f"{dst}: already exists; choose another destination or pass overwrite")
    build_folder(dst, build)
