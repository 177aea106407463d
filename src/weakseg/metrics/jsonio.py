"""JSON that other readers can parse: ``null`` instead of NaN/inf, written atomically.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which is not valid JSON and breaks other
readers (``ecosystem.md`` §5.2). ``json_safe`` converts them to ``None``; ``atomic_write_json`` then dumps
with ``allow_nan=False`` (so a missed value fails loudly) into a temporary file and renames it, so an
interrupted write never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def json_safe(obj: Any) -> Any:
    """Recursively convert to JSON-ready Python: NaN/inf -> None, numpy/torch scalars and arrays -> Python.

    Dict keys become strings; tuples and sets become lists.
    """
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in obj]
    torch = sys.modules.get("torch")      # no tensor can exist before torch is imported: keep this module light
    if torch is not None and isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def dumps_json(obj: Any, *, indent: int | None = 2) -> str:
    """``json.dumps`` of ``json_safe(obj)``; never emits NaN or Infinity."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    """Write ``json_safe(obj)`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    _atomic_write_text(path, dumps_json(obj, indent=indent) + "\n")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write text to ``path`` atomically (temporary file in the same folder, then ``os.replace``)."""
    _atomic_write_text(path, text)
