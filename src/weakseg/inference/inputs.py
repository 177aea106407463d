"""What a volume prediction is asked, and which input cases it predicts (``weakseg predict``).

A ``PredictRequest`` holds the options every volume prediction shares, whatever the run kind: the run and
its checkpoint, the input and output folders, test-time augmentation, probabilities, batch size, device,
overwrite, progress and the input's channel names. ``weakseg.inference.predict.predict_folder`` builds and
checks it, then predicts BraTS runs itself and hands organs runs to
``weakseg.inference.predict_organs.predict_organs_folder``.

``find_input_cases`` finds the cases of an input folder, one ``InputCase`` each, and checks them all before
anything is read or written: BraTS subject folders (either naming), or an nnU-Net ``imagesTs`` folder whose
NIfTI files are named ``{case}_{XXXX}`` (channel index ``XXXX``, matched by ``_CHANNEL_RE``), with the
channel order planned by ``weakseg.inference.channels.plan_channels``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from weakseg.data.brats.reader import BratsSubject, check_headers, find_brats_subjects
from weakseg.data.formats.nifti import geometry_problem, read_header
from weakseg.errors import WeaksegError, raise_problems


@dataclass(frozen=True)
class PredictRequest:
    """What every volume prediction is asked (the arguments of ``predict_folder`` both run kinds share)."""

    run_dir: str | os.PathLike
    input_dir: str | os.PathLike
    out_dir: Path
    checkpoint: str = "best"
    tta: bool = False
    probabilities: bool = False
    batch_size: int | None = None
    device: str = "auto"
    overwrite: bool = False
    progress: bool | None = None
    channels: Sequence[str] | None = None


_CHANNEL_RE = re.compile(r"^(?P<case>.+)_(?P<ch>\d{4})\.nii(\.gz)?$")


@dataclass
class InputCase:
    """One case to predict: its id, channel files in training channel order, and (BraTS) its seg file."""

    case_id: str
    images: tuple[Path, ...]
    seg: Path | None = None
    subject: BratsSubject | None = None


def find_input_cases(input_dir: str | os.PathLike, channels: Sequence[str], *,
                     with_seg: bool = False, given_channels: Sequence[str] | None = None,
                     ) -> tuple[str, list[InputCase]]:
    """Cases under ``input_dir``: BraTS subject folders (either naming) or an nnU-Net ``imagesTs`` folder.

    The kind is decided by the folder's content: NIfTI files named ``{case}_{XXXX}`` directly inside ->
    nnU-Net; subject folders -> BraTS. Channel files of an nnU-Net case are taken in index order and must
    number ``len(channels)`` (the model's input channels); which file is which channel is declared by the
    folder's ``dataset.json`` or ``given_channels`` (``weakseg.inference.channels.plan_channels``, which
    refuses to guess the order of several channels). Cases are 3D volumes; a singleton third axis
    (a 2D slice case, e.g. weakseg's own hemisphere export) is refused. ``with_seg``: BraTS subjects need
    a seg file on their image grid. Problems of every case -> one WeaksegError.
    Returns (kind, cases) with kind ``"brats"`` or ``"nnunet"``.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise WeaksegError(f"{root}: input folder not found; give BraTS subject folders or an nnU-Net imagesTs folder")
    entries = [p for p in sorted(root.iterdir()) if not p.name.startswith((".", "_"))]
    nifti = [p for p in entries if p.is_file() and p.name.endswith((".nii.gz", ".nii"))]
    if not nifti:
        subjects = find_brats_subjects(root, channels=channels, require_seg=with_seg)   # raises when empty
        problems = []
        cases = []
        for s in subjects:
            probs = list(s.problems) + check_headers(s, channels=channels)   # seg included when with_seg
            if probs:
                problems.append(f"subject {s.subject_id} ({s.folder}): " + "; ".join(probs))
            cases.append(InputCase(s.subject_id, tuple(s.files.get(c, Path()) for c in channels),
                                   s.files.get("seg"), s))
        raise_problems(problems, what=f"predict {root}", written=True)
        return "brats", cases
    from weakseg.inference.channels import plan_channels   # noqa: PLC0415

    try:
        file_index = plan_channels(root, channels, given=given_channels).file_index
    except WeaksegError as exc:            # listed with the per-case problems below
        problems_first, file_index = [str(exc)], tuple(range(len(channels)))
    else:
        problems_first = []
    found: dict[str, dict[int, Path]] = {}
    problems = list(problems_first)
    for f in nifti:
        m = _CHANNEL_RE.match(f.name)
        if not m:
            problems.append(f"{f}: name lacks the _XXXX channel suffix of an nnU-Net imagesTs file "
                            f"(e.g. case_0000.nii.gz)")
            continue
        found.setdefault(m["case"], {})[int(m["ch"])] = f
    n = len(channels)
    cases = []
    for cid, chans in sorted(found.items()):
        if sorted(chans) != list(range(len(chans))):
            problems.append(f"case {cid}: channel files {sorted(chans)} are not numbered 0..{len(chans) - 1}")
        elif len(chans) != n:
            problems.append(f"case {cid}: {len(chans)} channel file(s) ({cid}_0000 ...) but the model takes {n} "
                            f"({', '.join(channels)}); give {n} channels in the training order")
        else:
            files = tuple(chans[i] for i in file_index)     # in the run's channel order
            try:
                geoms = [(p, *read_header(p)) for p in files]
            except WeaksegError as exc:
                problems.append(str(exc))
                continue
            for p, shape, aff in geoms:
                if len(shape) != 3 or 1 in shape:
                    problems.append(f"{p}: shape {shape} is not a 3D volume; predict takes one 3D file per "
                                    f"channel (2D slice cases are not supported)")
                    break
                prob = geometry_problem(shape, aff, geoms[0][1], geoms[0][2], names=(p.name, geoms[0][0].name))
                if prob:
                    problems.append(f"case {cid}: {prob}")
                    break
            cases.append(InputCase(cid, files))
    raise_problems(problems, what=f"predict {root}", written=True)
    return "nnunet", cases


__all__ = ["InputCase", "PredictRequest", "find_input_cases"]
