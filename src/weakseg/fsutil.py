"""Filesystem helpers shared by every writer of a whole output folder."""

from __future__ import annotations

import os
import shutil
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
