"""SMILEr self-relabelling: pseudo-label selection and scoring (smile.md §8-9)."""

from __future__ import annotations

from weakseg.relabel.scoring import mc_dropout_mode, mc_dropout_scores, probability_scores
from weakseg.relabel.selection import (
    SMILER_MC_PRESET,
    RelabelResult,
    SmilerOptions,
    gamma_schedule,
    pseudo_label_stats,
    relabel_round,
    select_pseudo_labels,
    update_pseudo_labels,
)

__all__ = [
    "SMILER_MC_PRESET", "RelabelResult", "SmilerOptions", "gamma_schedule",
    "mc_dropout_mode", "mc_dropout_scores", "probability_scores", "pseudo_label_stats", "relabel_round",
    "select_pseudo_labels", "update_pseudo_labels",
]
