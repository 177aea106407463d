"""Assemble one partially annotated nnU-Net raw dataset from several (``weakseg merge``; ``smile.md`` §3.3,
§15.4; ``ecosystem.md`` §4.3).

Partially annotated data arrive as separate datasets, each annotating its own organs (LiTS: liver and
tumour; MSD Pancreas: pancreas and cancer; BTCV: 13 organs). A merge spec names one canonical label list
and, per source, how each of its labels maps onto it::

    {
      "labels": {"background": 0, "liver": 1, "stomach": 2, "pancreas": 3},
      "sources": {
        "lits":     {"root": "Dataset003_Liver", "remap": {"liver": "liver", "tumour": "liver"}},
        "pancreas": {"root": "Dataset007_Pancreas", "remap": {"pancreas": "pancreas", "cancer": "pancreas"},
                     "case_prefix": "pan_"},
        "btcv":     {"root": "Dataset200_BTCV", "remap": {"liver": "liver", "stomach": "stomach",
                                                          "pancreas": "pancreas", "spleen": null}}
      },
      "status": {"pan_0004": {"stomach": "absent"}}
    }

- ``remap`` must cover every label of the source (``null``: the label becomes background); a source's
  annotated organs are the canonical classes its labels reach (or ``annotated``, a list or ``"all"``).
- Each merged case records its source in the ``weakseg`` block: its annotated organs resolve to ``mask``,
  the others to ``unknown``. Statuses a source's own ``weakseg`` block gives (e.g. ``absent``) are kept
  where its labels map one to one; ``status`` (or ``--status FILE``) overrides per case come last.
- Case ids get the source's ``case_prefix`` (default none); two sources claiming one id are refused.
- Images are copied byte for byte (or linked); label maps are rewritten through the remap (uint8) on
  their own grid and header. ``imagesTs``/``labelsTs`` are merged the same way when present; the
  statuses of the ``labelsTs`` maps (their source's annotated organs ``mask``, the rest ``unknown``) go to
  ``labelsTs_status.json``, for ``weakseg score --statuses``.

Every problem found from the headers (spec, remap coverage, channel names, duplicate ids, missing files,
image/label grid, status words) is reported together before anything is written; label values outside
a source's declared labels are found while writing, which happens under a temporary folder renamed only
when complete: an existing destination is never partly overwritten.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import weakseg
from weakseg.data.formats.nifti import geometry_problem, load_volume, read_header, save_volume
from weakseg.data.formats.nnunet_raw import (
    NnunetCase,
    NnunetDataset,
    list_cases,
    read_dataset_json,
    write_dataset_json,
)
from weakseg.data.status import STATUSES, resolve_statuses
from weakseg.errors import WeaksegError, raise_problems
from weakseg.fsutil import build_folder

#: statuses of the merged labelsTs maps ({case: {class: status}}): score them with weakseg score --statuses
TEST_STATUS_NAME = "labelsTs_status.json"
_SPEC_KEYS = ("labels", "sources", "status", "description", "name")
_SOURCE_KEYS = ("root", "remap", "annotated", "case_prefix")
_ENDING = ".nii.gz"


@dataclass
class MergeSource:
    """One source dataset: where it is, how its labels map to the canonical ones, its case-id prefix."""

    name: str
    root: Path
    remap: dict[str, str | None]
    annotated: list[str] | str | None = None
    case_prefix: str = ""
    dataset: NnunetDataset | None = None
    cases: dict[str, list[NnunetCase]] = field(default_factory=dict)     # split -> cases

    def annotated_classes(self, canonical: Sequence[str]) -> list[str]:
        if self.annotated == "all":
            return list(canonical)
        if self.annotated is not None:
            return list(self.annotated)
        reached = {t for t in self.remap.values() if t is not None}
        return [c for c in canonical if c in reached]

    def lut(self, labels: Mapping[str, int]) -> np.ndarray:
        """Source label value -> canonical value. Shape: (max source value + 1,) uint8."""
        assert self.dataset is not None
        src = {k: int(v) for k, v in self.dataset.labels.items()}
        table = np.zeros(max(src.values()) + 1, dtype=np.uint8)
        for name, value in src.items():
            target = self.remap.get(name) if name != "background" else None
            table[value] = 0 if target is None else int(labels[target])
        return table


_ToWrite = tuple[MergeSource, str, NnunetCase, str]       # (source, split, case, merged id)


@dataclass
class MergeSpec:
    labels: dict[str, int]
    sources: list[MergeSource]
    status: dict[str, dict[str, str]]
    description: str = ""

    @property
    def class_names(self) -> list[str]:
        return [k for k, _ in sorted(self.labels.items(), key=lambda kv: kv[1]) if k != "background"]


# ----------------------------------------------------------------------------------------------- reading
def read_status_table(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Per-case status overrides from JSON (``{case: {class: status}}``) or CSV (columns case, class, status;
    ``organ`` is accepted for ``class``). Words are checked later against the dataset's classes."""
    path = Path(path)
    if not path.is_file():
        raise WeaksegError(f"{path}: status file not found; give a JSON {{case: {{class: status}}}} or a CSV "
                           "with columns case,class,status")
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            raise WeaksegError(f"{path}: no rows; write a header case,class,status and one row per pair")
        cols = {c.strip().lower(): c for c in rows[0]}
        cls_col = cols.get("class") or cols.get("organ")
        if "case" not in cols or cls_col is None or "status" not in cols:
            raise WeaksegError(f"{path}: columns {list(rows[0])}; the header must be case,class,status")
        out: dict[str, dict[str, str]] = {}
        for i, row in enumerate(rows, start=2):
            case, cls, word = (str(row[cols['case']] or "").strip(), str(row[cls_col] or "").strip(),
                               str(row[cols['status']] or "").strip())
            if not case or not cls or not word:
                raise WeaksegError(f"{path}: line {i} has an empty cell; every row needs case, class and status")
            if word not in STATUSES:
                raise WeaksegError(f"{path}: line {i}: status {word!r} is not one of {', '.join(STATUSES)}")
            out.setdefault(case, {})[cls] = word
        return out
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WeaksegError(f"{path}: not valid JSON ({exc}); fix the file") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise WeaksegError(f"{path}: expected {{case: {{class: status}}}}")
    for case, entry in data.items():
        for cls, word in entry.items():
            if word not in STATUSES:
                raise WeaksegError(f"{path}: {case}.{cls}: status {word!r} is not one of {', '.join(STATUSES)}")
    return {str(c): {str(k): str(v) for k, v in e.items()} for c, e in data.items()}


def read_merge_spec(path: str | os.PathLike) -> MergeSpec:
    """Parse a merge spec (module docstring); relative roots are relative to the spec's folder."""
    path = Path(path)
    if not path.is_file():
        raise WeaksegError(f"{path}: merge spec not found; write a JSON with labels and sources (docs/predict.md)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WeaksegError(f"{path}: not valid JSON ({exc}); fix the file") from None
    return parse_merge_spec(raw, base=path.parent, where=str(path))


def parse_merge_spec(raw: Any, *, base: Path = Path("."), where: str = "merge spec") -> MergeSpec:
    if not isinstance(raw, dict):
        raise WeaksegError(f"{where}: expected a JSON object with labels and sources")
    extra = [k for k in raw if k not in _SPEC_KEYS]
    if extra:
        raise WeaksegError(f"{where}: unknown key {extra[0]!r}; valid keys: {', '.join(_SPEC_KEYS)}")
    labels = raw.get("labels")
    if not isinstance(labels, dict) or labels.get("background") != 0 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in labels.values()):
        raise WeaksegError(f"{where}: labels must map names to integers 0..255 with \"background\": 0, got {labels!r}")
    if len(set(labels.values())) != len(labels):
        raise WeaksegError(f"{where}: labels {labels} give two classes one value; give each class its own value")
    if "ignore" in labels:
        raise WeaksegError(f"{where}: labels: 'ignore' is not a class; unannotated organs get status unknown")
    sources_raw = raw.get("sources")
    if not isinstance(sources_raw, dict) or not sources_raw:
        raise WeaksegError(f"{where}: sources must map a source name to {{root, remap}}")
    sources = []
    for name, spec in sources_raw.items():
        here = f"{where}: sources.{name}"
        if not isinstance(spec, dict):
            raise WeaksegError(f"{here}: expected an object with root and remap")
        bad = [k for k in spec if k not in _SOURCE_KEYS]
        if bad:
            raise WeaksegError(f"{here}: unknown key {bad[0]!r}; valid keys: {', '.join(_SOURCE_KEYS)}")
        if not isinstance(spec.get("root"), str):
            raise WeaksegError(f"{here}.root: give the source dataset folder")
        remap = spec.get("remap")
        if not isinstance(remap, dict) or not all(v is None or isinstance(v, str) for v in remap.values()):
            raise WeaksegError(f"{here}.remap: map each source label name to a canonical class name or null")
        annotated = spec.get("annotated")
        if annotated is not None and annotated != "all" and not (
                isinstance(annotated, list) and all(isinstance(a, str) for a in annotated)):
            raise WeaksegError(f"{here}.annotated: give a list of canonical classes or \"all\"")
        prefix = spec.get("case_prefix", "")
        if not isinstance(prefix, str):
            raise WeaksegError(f"{here}.case_prefix: give a string")
        root = Path(spec["root"])
        sources.append(MergeSource(str(name), root if root.is_absolute() else base / root, dict(remap),
                                   annotated, prefix))
    status = raw.get("status") or {}
    if not isinstance(status, dict) or not all(isinstance(v, dict) for v in status.values()):
        raise WeaksegError(f"{where}: status must map case -> {{class: status}}")
    return MergeSpec({str(k): int(v) for k, v in labels.items()}, sources, status, str(raw.get("description", "")))


# ----------------------------------------------------------------------------------------------- checks
def _carried_statuses(src: MergeSource, case_ids: Sequence[str], canonical: Sequence[str]) -> dict[str, dict[str, str]]:
    """Statuses a source's own weakseg block gives, carried to the canonical classes its labels map onto.

    A canonical class reached by several source labels takes their common status; ``mask`` and
    ``absent`` together make ``mask`` (the union is annotated); any other mix is ``unknown``.
    Only statuses that differ from the source-level default (``mask`` annotated) are returned.
    """
    ds = src.dataset
    assert ds is not None
    if not ds.weakseg:
        return {}
    resolved = resolve_statuses(ds.weakseg, case_ids, ds.class_names, where=f"{ds.root / 'dataset.json'}: weakseg")
    out: dict[str, dict[str, str]] = {}
    for case, st in resolved.items():
        for cls in canonical:
            words = {st[s] for s, t in src.remap.items() if t == cls and s in st}
            if not words:
                continue
            word = words.pop() if len(words) == 1 else ("mask" if words <= {"mask", "absent"} else "unknown")
            if word != "mask":
                out.setdefault(case, {})[cls] = word
    return out


def plan_merge(spec: MergeSpec, *, extra_status: Mapping[str, Mapping[str, str]] | None = None,
               ) -> tuple[dict[str, Any], list[_ToWrite], dict[str, dict[str, str]]]:
    """Check everything the headers can tell; returns the ``weakseg`` block, the cases to write and the
    statuses of the test cases (``imagesTs``: the block resolves training cases only).

    Each case to write is ``(source, split, case, merged_id)``. All problems -> one WeaksegError.
    """
    problems: list[str] = []
    canonical = spec.class_names
    channels: tuple[str, ...] | None = None
    first = ""
    for src in spec.sources:
        try:
            src.dataset = read_dataset_json(src.root)
        except WeaksegError as exc:
            problems.append(f"source {src.name}: {exc}")
            continue
        ds = src.dataset
        if ds.file_ending != _ENDING:
            problems.append(f"source {src.name}: file_ending {ds.file_ending!r}; merge writes {_ENDING}, convert "
                            f"the source's files to {_ENDING} first")
        if "ignore" in ds.labels:
            problems.append(f"source {src.name}: declares an 'ignore' label; weakseg marks unannotated organs with "
                            "status unknown instead: drop the ignore label from that source first")
        names = tuple(ds.channel_names[str(i)].lower() for i in range(ds.n_channels))
        if channels is None:
            channels, first = names, src.name
        elif names != channels:
            problems.append(f"source {src.name}: channel_names {list(names)} differ from source {first}'s "
                            f"{list(channels)}; merge sources with the same channels in the same order")
        src_labels = [k for k in ds.labels if k not in ("background", "ignore")]
        uncovered = [k for k in src_labels if k not in src.remap]
        if uncovered:
            problems.append(f"source {src.name}: label(s) {uncovered} of {ds.root / 'dataset.json'} are not in its "
                            f"remap; map each to a canonical class or to null (background)")
        for k, t in src.remap.items():
            if k not in src_labels:
                problems.append(f"source {src.name}: remap names {k!r}, not a label of {ds.root / 'dataset.json'} "
                                f"(labels: {', '.join(src_labels)})")
            if t is not None and t not in canonical:
                problems.append(f"source {src.name}: remap {k!r} -> {t!r}: not a canonical class "
                                f"({', '.join(canonical)})")
        if isinstance(src.annotated, list):
            for a in src.annotated:
                if a not in canonical:
                    problems.append(f"source {src.name}: annotated class {a!r} is not canonical "
                                    f"({', '.join(canonical)})")
        for split in ("train", "test"):
            try:
                src.cases[split] = list_cases(src.root, split, dataset=ds)
            except WeaksegError as exc:
                problems.append(f"source {src.name}: {exc}")
    raise_problems(problems, what="merge", written=True)

    owner: dict[str, str] = {}
    test_status: dict[str, dict[str, str]] = {}
    todo: list[_ToWrite] = []
    cases_block: dict[str, dict[str, Any]] = {}
    for src in spec.sources:
        # a source's block may name its test cases too (statuses of imagesTs cases are not merged)
        carried = _carried_statuses(src, [c.case_id for sp in ("train", "test") for c in src.cases[sp]], canonical)
        for split in ("train", "test"):
            for case in src.cases[split]:
                mid = f"{src.case_prefix}{case.case_id}"
                if mid in owner:
                    problems.append(f"case id {mid!r} comes from sources {owner[mid]} and {src.name}; give one of "
                                    f"them a case_prefix in the merge spec")
                    continue
                owner[mid] = src.name
                problems += _grid_problems(src, case)
                todo.append((src, split, case, mid))
                if split == "train":
                    entry: dict[str, Any] = {"source": src.name}
                    if case.case_id in carried:
                        entry["status"] = dict(carried[case.case_id])
                    cases_block[mid] = entry
                else:            # imagesTs is outside the block (it resolves training cases): kept beside it
                    annotated = set(src.annotated_classes(canonical))
                    test_status[mid] = {c: ("mask" if c in annotated else "unknown") for c in canonical}
                    test_status[mid].update(carried.get(case.case_id, {}))
    overrides = {**{c: dict(e) for c, e in spec.status.items()}}
    for c, e in (extra_status or {}).items():
        overrides.setdefault(c, {}).update(e)
    for case, entry in overrides.items():
        if case not in cases_block:
            problems.append(f"status override for case {case!r}: not a merged training case (ids carry their "
                            "source's case_prefix)")
            continue
        cases_block[case].setdefault("status", {}).update(entry)
    block = {"format": 1, "default_status": "mask",
             "sources": {s.name: {"annotated": s.annotated_classes(canonical)} for s in spec.sources},
             "cases": cases_block}
    if not problems:
        try:
            resolve_statuses(block, list(cases_block), canonical, where="merged dataset.json: weakseg")
        except WeaksegError as exc:
            problems.append(str(exc))
    raise_problems(problems, what="merge", written=True)
    return block, todo, test_status


def _grid_problems(src: MergeSource, case: NnunetCase) -> list[str]:
    files = list(case.images) + ([case.label] if case.label is not None else [])
    if case.split == "test":
        lab = src.root / "labelsTs" / f"{case.case_id}{_ENDING}"
        if lab.is_file():
            files.append(lab)
    try:
        geoms = [(p, *read_header(p)) for p in files]
    except WeaksegError as exc:
        return [f"source {src.name}: {exc}"]
    out = []
    for p, shape, aff in geoms[1:]:
        prob = geometry_problem(shape, aff, geoms[0][1], geoms[0][2], names=(p.name, geoms[0][0].name))
        if prob:
            out.append(f"source {src.name}, case {case.case_id}: {prob}")
    return out


# ----------------------------------------------------------------------------------------------- writing
def merge_datasets(spec: MergeSpec, dst: str | os.PathLike, *,
                   extra_status: Mapping[str, Mapping[str, str]] | None = None, overwrite: bool = False,
                   link_images: bool = False) -> dict[str, Any]:
    """Write the merged dataset to ``dst`` (atomically); returns a report (also ``dst/weakseg_merge.json``).

    Args:
        extra_status: per-case overrides applied after the spec's ``status``.
        link_images: symlink the image files instead of copying them (saves disk; the sources must stay).
    """
    dst = Path(dst)
    if dst.exists() and not overwrite:
        raise WeaksegError(f"{dst}: already exists; choose another destination or pass --overwrite")
    block, todo, test_status = plan_merge(spec, extra_status=extra_status)
    canonical = spec.class_names
    report: dict[str, Any] = {"weakseg_version": weakseg.__version__, "destination": str(dst.resolve()),
                              "labels": spec.labels, "sources": {}, "bad_values": []}

    def build(tmp: Path) -> None:
        bad: list[str] = []
        training = []
        counts = {s.name: {"train": 0, "test": 0, "voxels": dict.fromkeys(canonical, 0)} for s in spec.sources}
        for src, split, case, mid in todo:
            img_dir, lab_dir = ("imagesTr", "labelsTr") if split == "train" else ("imagesTs", "labelsTs")
            images = []
            for i, p in enumerate(case.images):
                target = tmp / img_dir / f"{mid}_{i:04d}{_ENDING}"
                target.parent.mkdir(parents=True, exist_ok=True)
                if link_images:
                    os.symlink(p.resolve(), target)
                else:
                    shutil.copyfile(p, target)
                images.append(str(target.relative_to(tmp)))
            label = case.label if split == "train" else src.root / "labelsTs" / f"{case.case_id}{_ENDING}"
            written = None
            if label is not None and label.is_file():
                vol = load_volume(label, kind="label")
                lut = src.lut(spec.labels)
                values = np.unique(vol.array)
                extra = sorted(int(v) for v in values if v < 0 or v >= len(lut) or
                               int(v) not in {int(x) for x in src.dataset.labels.values()})
                if extra:
                    bad.append(f"{label}: label value(s) {extra} are not declared in source {src.name}'s labels "
                               f"{src.dataset.labels}; fix the file or declare them and remap them")
                    continue
                merged = lut[vol.array.astype(np.int64)]
                for cls in canonical:
                    counts[src.name]["voxels"][cls] += int((merged == spec.labels[cls]).sum())
                written = save_volume(merged, vol, tmp / lab_dir / f"{mid}{_ENDING}", dtype=np.uint8)
            counts[src.name][split] += 1
            if split == "train":
                training.append({"image": images, "label": str(written.relative_to(tmp)) if written else None})
        if bad:
            raise WeaksegError(f"merge: {len(bad)} label map(s) hold undeclared values, nothing written:\n  "
                               + "\n  ".join(bad))
        for sub in ("imagesTr", "labelsTr"):
            (tmp / sub).mkdir(exist_ok=True)
        assert spec.sources[0].dataset is not None
        ds0 = spec.sources[0].dataset
        write_dataset_json(tmp, channel_names=ds0.channel_names, labels=spec.labels, num_training=len(training),
                           weakseg_block=block, training=training,
                           description=spec.description or "merged by weakseg merge from "
                           + ", ".join(s.name for s in spec.sources))
        report["sources"] = {s.name: {"root": str(s.root.resolve()), "remap": s.remap, "case_prefix": s.case_prefix,
                                      "annotated": block["sources"][s.name]["annotated"], **counts[s.name]}
                             for s in spec.sources}
        report["n_train"], report["n_test"] = len(training), sum(1 for t in todo if t[1] == "test")
        if any(t[1] == "test" for t in todo) and (tmp / "labelsTs").is_dir():
            labelled = {p.name[: -len(_ENDING)] for p in (tmp / "labelsTs").iterdir()}
            (tmp / TEST_STATUS_NAME).write_text(json.dumps(
                {c: st for c, st in test_status.items() if c in labelled}, indent=1) + "\n")
            report["test_status"] = TEST_STATUS_NAME
        (tmp / "weakseg_merge.json").write_text(json.dumps(report, indent=1) + "\n")

    build_folder(dst, build)
    return report


# ------------------------------------------------------------------------------------------ status block
def set_statuses(root: str | os.PathLike, updates: Mapping[str, Mapping[str, str]], *,
                 sources: Mapping[str, Sequence[str] | str] | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Write or edit the ``weakseg`` block of one dataset's ``dataset.json`` from (case, class, status) rows.

    ``updates`` set per-case statuses (on top of what the block says); ``sources`` declares or replaces
    sources (name -> annotated classes or ``"all"``). The result is validated (case ids against
    ``imagesTr``, classes, words) before ``dataset.json`` is replaced atomically; every other key stays.
    Returns the new block.
    """
    root = Path(root)
    ds = read_dataset_json(root)
    ids = [c.case_id for c in list_cases(root, "train", dataset=ds)]
    block = json.loads(json.dumps(ds.weakseg)) if ds.weakseg else {"format": 1, "default_status": "mask"}
    for name, annotated in (sources or {}).items():
        block.setdefault("sources", {})[name] = {"annotated": annotated if annotated == "all" else list(annotated)}
    cases = block.setdefault("cases", {})
    for case, entry in updates.items():
        cases.setdefault(case, {}).setdefault("status", {}).update(entry)
    resolve_statuses(block, ids, ds.class_names, where=f"{root / 'dataset.json'} after the update: weakseg")
    if not dry_run:
        raw = dict(ds.raw)
        raw["weakseg"] = block
        path = root / "dataset.json"
        tmp = path.with_name(f".dataset.json.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(raw, indent=1) + "\n")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
    return block


def status_counts(root: str | os.PathLike) -> tuple[int, dict[str, dict[str, int]]]:
    """The training cases of one dataset and, per class, how many of them have each status (``STATUSES``
    order), as the ``weakseg`` block of its ``dataset.json`` resolves them."""
    root = Path(root)
    ds = read_dataset_json(root)
    ids = [c.case_id for c in list_cases(root, "train", dataset=ds)]
    resolved = resolve_statuses(ds.weakseg, ids, ds.class_names, where=f"{root / 'dataset.json'}: weakseg")
    return len(ids), {cls: {w: sum(r[cls] == w for r in resolved.values()) for w in STATUSES}
                      for cls in ds.class_names}
