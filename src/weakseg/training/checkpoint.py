"""Self-describing checkpoints, written atomically and loaded with ``weights_only=True``.

A save goes to ``<name>.tmp``, is flushed and fsynced, then renamed over the old file with
``os.replace``: an interrupted save never leaves half a file, and the previous checkpoint stays intact
until the new one is complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

import weakseg
from weakseg.errors import WeaksegError

CHECKPOINT_FORMAT = 1


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` (plus format and version stamps) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "weakseg_version": weakseg.__version__, **payload}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:   # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely; a missing, truncated or foreign file gives a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise WeaksegError(f"no checkpoint at {path}; train first (weakseg train CONFIG --out RUN_DIR) "
                           "or pass the run folder that holds checkpoints/last.pt")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        raise WeaksegError(f"{path}: cannot read checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                           "the file is damaged or not a weakseg checkpoint: resume from another checkpoint") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WeaksegError(f"{path}: not a weakseg checkpoint of format {CHECKPOINT_FORMAT} "
                           f"(found format {payload.get('format') if isinstance(payload, dict) else '?'})")
    return payload
