"""Evaluation metrics with an explicit empty-case policy (``ecosystem.md`` §5, §7; ``genseg.md`` §12).

- ``counts``: confusion counts per case and class; ``dice``: Dice/IoU from counts;
- ``policy``: ``EmptyCasePolicy``; ``distance``: HD95/ASSD in mm through MONAI, empty cases by policy;
- ``image_level``: ``ImageSetMetrics``, the streaming 2D P/A image-set evaluation;
- ``summary``: per-case volume scoring in the extended nnU-Net ``summary.json`` schema;
- ``score_folder``: the same from two folders of NIfTI label maps; ``jsonio``: NaN-free atomic JSON.
"""

from __future__ import annotations

import importlib
from typing import Any

# Submodule of each public name. Imported on first use (PEP 562) so that ``weakseg.metrics.jsonio`` and
# friends stay light: the CLI's parser reaches them, and ``distance`` pulls MONAI (seconds of import time).
_WHERE = {
    "confusion_counts": "counts", "confusion_counts_numpy": "counts",
    "dice_from_counts": "dice", "iou_from_counts": "dice",
    "assd": "distance", "hd95": "distance", "volume_diagonal_mm": "distance",
    "ImageSetMetrics": "image_level",
    "atomic_write_json": "jsonio", "json_safe": "jsonio",
    "EmptyCasePolicy": "policy",
    "score_folders": "score_folder",
    "CaseToScore": "summary", "score_cases": "summary", "summary_csv": "summary", "write_summary": "summary",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"weakseg.metrics.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'weakseg.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "CaseToScore",
    "EmptyCasePolicy",
    "ImageSetMetrics",
    "assd",
    "atomic_write_json",
    "confusion_counts",
    "confusion_counts_numpy",
    "dice_from_counts",
    "hd95",
    "iou_from_counts",
    "json_safe",
    "score_cases",
    "score_folders",
    "summary_csv",
    "volume_diagonal_mm",
    "write_summary",
]
