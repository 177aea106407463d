"""BraTS subject folders: discovery in both namings, and validation (``genseg.md`` §10, pitfall #5).

Layouts found under a root folder:

- 2017: ``HGG/<id>/`` and ``LGG/<id>/`` with ``<id>_{flair,t1,t1ce,t2,seg}.nii.gz`` (grade recorded);
- 2018-2021: ``<id>/`` directly under the root, e.g. ``BraTS20_Training_001/BraTS20_Training_001_flair.nii.gz``
  or ``BraTS2021_00000/BraTS2021_00000_t1ce.nii.gz`` (no grade).

A file belongs to a modality when the text after its last ``_`` and before ``.nii[.gz]`` equals the
modality name exactly (``t1`` never matches ``t1ce``). Labels are BraTS 2017-2021's {0, 1, 2, 4}.
Validation collects every problem of every subject into one error, before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from weakseg.data.formats.nifti import Volume, geometry_problem, load_volume, read_header, strip_nifti_suffix
from weakseg.errors import WeaksegError

MODALITIES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
DEFAULT_CHANNELS: tuple[str, ...] = ("flair", "t1ce", "t1", "t2")   # the reference's stacking order
BRATS_LABELS: tuple[int, ...] = (0, 1, 2, 4)                        # 1 core, 2 oedema, 4 enhancing
# Target regions as sets of BraTS labels: whole tumour, tumour core, enhancing tumour.
REGIONS: dict[str, tuple[int, ...]] = {"whole_tumour": (1, 2, 4), "tumour_core": (1, 4), "enhancing": (4,)}
GRADE_FOLDERS: tuple[str, ...] = ("HGG", "LGG")
# Tumour voxels allowed outside the brain mask (every modality 0), as a fraction of the seg's tumour voxels:
# skull stripping and label smoothing can leave a few; more means the seg belongs to other images.
TUMOUR_OUTSIDE_TOLERANCE = 0.01


@dataclass
class BratsSubject:
    """One subject folder: its id, grade (None for 2018+ layouts) and the file of each modality."""

    subject_id: str
    folder: Path
    grade: str | None
    files: dict[str, Path] = field(default_factory=dict)   # modality -> path, 'seg' included when found
    problems: list[str] = field(default_factory=list)       # discovery problems (missing/duplicate files)

    def path(self, modality: str) -> Path:
        return self.files[modality]


def _subject_folders(root: Path) -> list[tuple[Path, str | None]]:
    graded = [root / g for g in GRADE_FOLDERS if (root / g).is_dir()]
    if graded:
        return [(d, g.name) for g in graded for d in sorted(g.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    return [(d, None) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith((".", "_"))
            and any(strip_nifti_suffix(f.name) is not None for f in d.iterdir())]


def find_brats_subjects(
    root: str | os.PathLike,
    *,
    channels: Sequence[str] = DEFAULT_CHANNELS,
    require_seg: bool = True,
) -> list[BratsSubject]:
    """Subjects under ``root`` in folder order (grades in HGG, LGG order, then ``sorted()`` names).

    Missing or duplicated modality files are recorded in ``BratsSubject.problems`` (not raised), so
    ``validate_subjects`` can report every problem at once. Raises when ``root`` holds no subject.
    """
    root = Path(root)
    if not root.is_dir():
        raise WeaksegError(f"{root}: BraTS folder not found; give the folder holding HGG/ and LGG/ (2017) "
                           f"or the BraTS20_Training_NNN subject folders (2018-2021)")
    bad = [c for c in channels if c not in MODALITIES]
    if bad or len(set(channels)) != len(channels) or not channels:
        raise WeaksegError(f"BraTS channels {list(channels)}: use distinct names from {list(MODALITIES)}")
    wanted = list(channels) + (["seg"] if require_seg else [])
    subjects = []
    for folder, grade in _subject_folders(root):
        subj = BratsSubject(subject_id=folder.name, folder=folder, grade=grade)
        for f in sorted(folder.iterdir()):
            stem = strip_nifti_suffix(f.name)
            if stem is None or f.name.startswith("._") or "_" not in stem:
                continue
            suffix = stem.rsplit("_", 1)[1].lower()
            if suffix not in wanted:
                continue
            if suffix in subj.files:
                subj.problems.append(f"two files for '{suffix}' ({subj.files[suffix].name}, {f.name}); keep one")
            else:
                subj.files[suffix] = f
        for m in wanted:
            if m not in subj.files:
                subj.problems.append(f"missing '{m}' file (expected {folder.name}_{m}.nii.gz)")
        subjects.append(subj)
    if not subjects:
        raise WeaksegError(f"{root}: no BraTS subject folders found; expected HGG/<id>/<id>_flair.nii.gz ... "
                           f"(2017) or <id>/<id>_flair.nii.gz ... (2018-2021)")
    ids = [s.subject_id for s in subjects]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise WeaksegError(f"{root}: subject ids appear twice ({', '.join(dupes)}); patient ids must be unique")
    return subjects


def check_headers(subj: BratsSubject, *, channels: Sequence[str]) -> list[str]:
    """Geometry problems readable from headers alone: every file on the first channel's grid."""
    problems = []
    ref = None
    for m in [*channels, "seg"]:
        if m not in subj.files:
            continue
        try:
            shape, affine = read_header(subj.files[m])
        except WeaksegError as exc:
            problems.append(str(exc))
            continue
        if len(shape) != 3:
            problems.append(f"{subj.files[m].name}: shape {shape} is not a 3D volume")
            continue
        if ref is None:
            ref = (m, shape, affine)
            continue
        p = geometry_problem(shape, affine, ref[1], ref[2], names=(m, ref[0]))
        if p:
            problems.append(f"{subj.files[m].name}: {p}")
    return problems


@dataclass
class LoadedSubject:
    """Voxels of one subject, in storage (nibabel) order.

    Shape:
        images: (C, I, J, K) float32 in channel order; seg: (I, J, K) int (raw BraTS labels) or None.
    """

    subject: BratsSubject
    images: np.ndarray
    seg: np.ndarray | None
    affine: np.ndarray
    header: object
    channels: tuple[str, ...]


def load_subject(subj: BratsSubject, *, channels: Sequence[str], labels: Sequence[int] = BRATS_LABELS,
                 require_seg: bool = True) -> LoadedSubject:
    """Read and check one subject; raises one WeaksegError listing all of its problems."""
    problems = list(subj.problems) + check_headers(subj, channels=channels)
    if problems:
        raise WeaksegError(_subject_message(subj, problems))
    vols: list[Volume] = []
    for m in channels:
        try:
            vols.append(load_volume(subj.files[m], kind="image"))
        except WeaksegError as exc:
            problems.append(str(exc))
    seg = None
    if require_seg or "seg" in subj.files:
        try:
            seg_vol = load_volume(subj.files["seg"], kind="label")
            seg = seg_vol.array
            extra = sorted(set(np.unique(seg).tolist()) - set(labels))
            if extra:
                problems.append(f"{subj.files['seg'].name}: label values {extra} outside the BraTS set "
                                f"{sorted(labels)}; check the BraTS version (2023+ uses 3 for enhancing)")
        except WeaksegError as exc:
            problems.append(str(exc))
    if problems:
        raise WeaksegError(_subject_message(subj, problems))
    images = np.stack([v.array for v in vols])                            # (C, I, J, K)
    problems = brain_problems(images, seg, files=[subj.files[m] for m in channels], seg_file=subj.files.get("seg"))
    if problems:
        raise WeaksegError(_subject_message(subj, problems))
    return LoadedSubject(subject=subj, images=images, seg=seg, affine=vols[0].affine, header=vols[0].header,
                         channels=tuple(channels))


def brain_problems(images: np.ndarray, seg: np.ndarray | None, *, files: Sequence[Path],
                   seg_file: Path | None = None) -> list[str]:
    """Voxel problems that would otherwise give a silently wrong answer.

    - no brain voxel (every channel 0 everywhere): every slice would be dropped as background, and its
      tumour, if any, would vanish from training and scoring;
    - more than ``TUMOUR_OUTSIDE_TOLERANCE`` of the seg's tumour voxels (labels > 0) outside the brain mask
      (voxels where every channel is 0): the seg does not match the images.

    Shape:
        images: (C, *S); seg: (*S) raw labels or None.
    """
    brain = (images != 0).any(0)                                          # (*S)
    names = ", ".join(Path(f).name for f in files)
    if not brain.any():
        return [f"no brain voxels: every channel is 0 everywhere ({names}); the image files are blank or were "
                "saved empty: restore them from the source, or remove the case"]
    if seg is None:
        return []
    tumour = seg > 0
    n_tumour = int(tumour.sum())
    outside = int((tumour & ~brain).sum())
    if n_tumour and outside > TUMOUR_OUTSIDE_TOLERANCE * n_tumour:
        where = Path(seg_file).name if seg_file is not None else "the seg"
        return [f"{where}: {outside} of {n_tumour} tumour voxels lie outside the brain (where every channel is 0; "
                f"tolerance {TUMOUR_OUTSIDE_TOLERANCE:.0%}); the seg does not belong to these images or the images "
                "were masked: pair each seg with its own subject's images, or remove the case"]
    return []


def _subject_message(subj: BratsSubject, problems: Sequence[str]) -> str:
    return f"subject {subj.subject_id} ({subj.folder}): " + "; ".join(problems)
