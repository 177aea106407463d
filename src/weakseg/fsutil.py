"""Filesystem helpers shared by every writer of a whole output folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


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
