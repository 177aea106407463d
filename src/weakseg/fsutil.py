"""Filesystem helpers shared by every writer of a whole output folder."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from weakseg.errors import WeaksegError


def check_destination(dst: str | os.PathLike[str], *, verb: str, flag: str = "DST") -> None:
    """Refuse, before any work, a destination whose parent folder cannot take a new folder.

    Probes by creating (and removing) an empty folder beside ``dst``, where the writer's temporary folder
    will go: permission bits lie to root and to some network filesystems, an actual write does not. A
    missing parent is created (as the writer would).
    """
    dst = Path(dst)
    parent = dst.parent
    probe = parent / f".{dst.name}.probe-{os.getpid()}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        what = err.strerror or type(err).__name__
        fix = ("free disk space" if err.errno in (errno.ENOSPC, errno.EDQUOT)
               else "make the folder writable")
        raise WeaksegError(f"{verb}: cannot write into {parent} ({what}); {fix} or choose another {flag}; "
                           "nothing was read or written yet") from None


def swap_in_folder(tmp: Path, dst: Path) -> None:
    """Move a completely written ``tmp`` folder to ``dst`` (replacing an existing one).

    The old folder is renamed aside first and removed only after the new one is in place, so ``dst``
    never holds a half-written tree.
    """
    if dst.exists():
        old = dst.parent / f"{dst.name}.old-{os.getpid()}"
        os.replace(dst, old)
        os.replace(tmp, dst)
        shutil.rmtree(old)
    else:
        os.replace(tmp, dst)


def build_folder(dst: Path, build: Callable[[Path], None]) -> None:
    """Run ``build(tmp)`` into ``dst.tmp-<pid>`` and swap it in as ``dst`` when it returns; on any error
    (or Ctrl-C) the temporary folder is removed, so ``dst`` is complete or untouched, never half-written.
    Whether an existing ``dst`` may be replaced is the caller's check."""
    tmp = dst.parent / f"{dst.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
        build(tmp)
        swap_in_folder(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
