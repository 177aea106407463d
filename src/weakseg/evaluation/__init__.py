"""Scoring a segmenter on a split: one place for every dataset family (image sets, organ volumes, BraTS volumes).

``evaluate`` / ``evaluate_volumes`` pick the scoring a ``DataBundle`` names; ``decode`` turns network outputs
into label maps the same way for scoring, prediction and SMILEr; ``slices`` runs a model over slice stacks.
"""

from weakseg.evaluation.registry import evaluate, evaluate_volumes, list_scorings, register_scoring

__all__ = ["evaluate", "evaluate_volumes", "list_scorings", "register_scoring"]
