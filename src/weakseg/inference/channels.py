"""Which input file is which model channel: the run's channel order against what the input folder says.

An nnU-Net ``imagesTs`` folder names its channels only by index (``{case}_0000``, ``_0001``, ...); what
each index holds is declared by the ``channel_names`` of the ``dataset.json`` beside it (in the folder or
its parent), or by the user (``--channels``). The model's order is the run's (the training dataset's
``channel_names``). This module compares the two and returns, for every model channel, the file index
to read; it never guesses:

- declared order == run order: read ``_0000 ...`` as they are;
- ``--channels`` given: it names the files' channels; a permutation of the run's channels is read in the
  run's order (the user said what each file is), anything else is refused;
- ``dataset.json`` declares another order (and no ``--channels``): refused, naming both orders and the fix;
- nothing declared: a one-channel run reads ``_0000``; a multi-channel run is refused (the order would
  be a guess: nnU-Net's Dataset137 stores BraTS as t1, t1ce, t2, flair, weakseg as flair, t1, t1ce, t2).

Names compare case-insensitively.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from weakseg.errors import WeaksegError


@dataclass(frozen=True)
class ChannelPlan:
    """For model channel i, read file index ``file_index[i]``; ``source`` says who declared the files."""

    file_index: tuple[int, ...]
    file_names: tuple[str, ...] | None    # what the files hold, in file order (None: not declared)
    source: str                           # "dataset.json <path>", "--channels", or "single channel"


def dataset_json_channels(input_dir: str | Path) -> tuple[Path, list[str]] | None:
    """``channel_names`` (in index order) of the dataset.json in ``input_dir`` or its parent, or None.

    Raises ``WeaksegError`` for an unreadable file or a malformed ``channel_names``.
    """
    root = Path(input_dir)
    for path in (root / "dataset.json", root.parent / "dataset.json"):
        if not path.is_file():
            continue
        try:
            names = json.loads(path.read_text()).get("channel_names")
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
            raise WeaksegError(f"{path}: not a valid dataset.json; fix it or move {root.name} out of that "
                               "folder") from None
        if not isinstance(names, dict) or not names or \
                sorted(names, key=lambda k: int(k) if str(k).isdigit() else -1) != [str(i) for i in range(len(names))]:
            raise WeaksegError(f"{path}: channel_names must map \"0\", \"1\", ... to names, got {names!r}; fix it")
        return path, [str(names[str(i)]) for i in range(len(names))]
    return None


def plan_channels(input_dir: str | Path, run_channels: Sequence[str], *,
                  given: Sequence[str] | None = None) -> ChannelPlan:
    """Map the run's channels onto the input folder's files (rules in the module docstring)."""
    run = [c.lower() for c in run_channels]
    declared = dataset_json_channels(input_dir)
    if given is not None:
        names = [g.strip() for g in given if g.strip()]
        low = [g.lower() for g in names]
        if sorted(low) != sorted(run) or len(set(low)) != len(low):
            raise WeaksegError(f"--channels {','.join(names)}: the run was trained on channels "
                               f"{','.join(run_channels)}; name each input file's channel once, e.g. "
                               f"--channels {','.join(run_channels)}")
        if declared is not None and [d.lower() for d in declared[1]] != low:
            raise WeaksegError(f"--channels {','.join(names)} disagrees with {declared[0]} channel_names "
                               f"{declared[1]}; fix one of them")
        return ChannelPlan(tuple(low.index(c) for c in run), tuple(names), "--channels")
    if declared is not None:
        path, names = declared
        low = [n.lower() for n in names]
        if low != run:
            how = (f"pass --channels {','.join(names)} to read them in the run's order, or renumber the files"
                   if sorted(low) == sorted(run) else
                   "give input files with the run's channels (predict cannot use other modalities)")
            raise WeaksegError(f"{path}: channel_names {names} differ from the run's channels "
                               f"{list(run_channels)} (in this order); {how}")
        return ChannelPlan(tuple(range(len(run))), tuple(names), f"dataset.json {path}")
    if len(run) == 1:
        return ChannelPlan((0,), None, "single channel")
    raise WeaksegError(f"{input_dir}: no dataset.json in the folder or its parent says which file is which "
                       f"channel, and the run takes {len(run)} ({','.join(run_channels)}); add a dataset.json "
                       f"or pass --channels in the files' order (_0000 first), e.g. --channels "
                       f"{','.join(run_channels)}")
