"""Evaluation metrics with an explicit empty-case policy (``ecosystem.md`` §5, §7; ``genseg.md`` §12).

- ``counts``: confusion counts per case and class; ``dice``: Dice/IoU from counts;
- ``policy``: ``EmptyCasePolicy``; ``distance``: HD95/ASSD in mm through MONAI, empty cases by policy;
- ``image_level``: ``ImageSetMetrics``, the streaming 2D P/A image-set evaluation;
- ``summary``: per-case volume scoring in the extended nnU-Net ``summary.json`` schema;
- ``score_folder``: the same from two folders of NIfTI label maps; ``jsonio``: NaN-free atomic JSON.
"""

from __future__ import annotations

from weakseg.metrics.counts import confusion_counts, confusion_counts_numpy
from weakseg.metrics.dice import dice_from_counts, iou_from_counts
from weakseg.metrics.distance import assd, hd95, volume_diagonal_mm
from weakseg.metrics.image_level import ImageSetMetrics
from weakseg.metrics.jsonio import atomic_write_json, json_safe
from weakseg.metrics.policy import EmptyCasePolicy
from weakseg.metrics.score_folder import score_folders
from weakseg.metrics.summary import CaseToScore, score_cases, summary_csv, write_summary

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
