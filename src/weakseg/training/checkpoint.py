"""Self-describing checkpoints, written atomically and loaded with ``weights_only=True``.

A save goes to ``<name>.tmp``, is flushed and fsynced, then renamed over the old file with
``os.replace``: an interrupted save never leaves half a file, and the previous checkpoint stays intact
until the new one is complete. A failed save (disk full, permission denied) removes the temporary file
and raises one ``WeaksegError`` line saying the previous checkpoint is intact.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import torch

import weakseg
from weakseg.errors import WeaksegError

CHECKPOINT_FORMAT = 1
_log = logging.getLogger("weakseg")


class CheckpointWriteError(WeaksegError):
    """The checkpoint could not be written; the previous file at the path is untouched."""


class CheckpointReadError(WeaksegError):
    """The file is damaged (truncated, empty, garbage) or not a checkpoint; ``reason`` says what torch saw."""

    def __init__(self, path: Path, reason: str, fix: str = "resume from another checkpoint") -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: cannot read checkpoint ({reason}); the file is damaged or not a weakseg "
                         f"checkpoint: {fix}")


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` (plus format and version stamps) atomically to ``path``."""
    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "weakseg_version": weakseg.__version__, **payload}
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        previous = "the previous checkpoint there is intact" if path.is_file() else "no checkpoint was written"
        raise CheckpointWriteError(f"{path}: cannot write checkpoint ({_os_reason(err)}); {previous}. "
                                   f"{_os_fix(err)}, then resume with --resume") from None
    except BaseException:
        _remove_quietly(tmp)   # a KeyboardInterrupt mid-save leaves no stray .tmp
        raise
    try:   # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _os_reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


def _os_fix(err: OSError) -> str:
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free disk space or choose another --out folder"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make the folder writable or choose another --out folder"
    return "check the disk and the folder"


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; a missing, truncated or foreign file gives a one-line error.

    A checkpoint written by another weakseg version loads with a warning naming both versions.
    """
    path = Path(path)
    if not path.is_file():
        raise WeaksegError(f"no checkpoint at {path}; train first (weakseg train CONFIG --out RUN_DIR) "
                           "or pass the run folder that holds checkpoints/last.pt")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        detail = (str(err).splitlines() or ["empty or cut short"])[0][:200]
        raise CheckpointReadError(path, f"{type(err).__name__}: {detail}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WeaksegError(f"{path}: not a weakseg checkpoint of format {CHECKPOINT_FORMAT} "
                           f"(found format {payload.get('format') if isinstance(payload, dict) else '?'}); "
                           "it was written by another weakseg version: load it with that version")
    version = payload.get("weakseg_version")
    if version != weakseg.__version__:
        _log.warning(f"{path}: written by weakseg {version}, this is weakseg {weakseg.__version__}; if loading "
                     f"fails or results differ, install weakseg=={version} to use it")
    return payload


def version_hint(payload: dict[str, Any]) -> str:
    """``" (written by weakseg X, this is Y)"`` when the versions differ, else ``""``: for load errors."""
    version = payload.get("weakseg_version")
    if version == weakseg.__version__:
        return ""
    return f" (written by weakseg {version}, this is weakseg {weakseg.__version__}: use weakseg=={version})"
