"""Which scoring a dataset gets: ``DataBundle.scoring`` names one (or is a callable of a user's own dataset).

A dataset builder only says *how* its splits are scored (``"image_set"``, ``"organs"``, BraTS whole volumes
``"brats_volumes"``); the training loop, ``weakseg evaluate`` and prediction reports all call ``evaluate`` /
``evaluate_volumes`` here, so every family is scored by the same code wherever it is scored, and the data
package never imports models, losses or metrics.
"""

from __future__ import annotations

from typing import Any

import torch

from weakseg.config.schema import Config
from weakseg.data.datasets import SampleSet
from weakseg.data.registry import DataBundle, EvaluateFn, SegmentFn
from weakseg.registry import Registry


def _import_builtin() -> None:
    # The built-in scorings register themselves on import; importing here keeps this module light.
    import weakseg.evaluation.builtin  # noqa: F401


_SCORINGS: Registry[EvaluateFn] = Registry("scoring", key="DataBundle.scoring", load=_import_builtin)

# Register ``fn(segment, split, cfg, device) -> metrics`` under a name for ``DataBundle.scoring``.
register_scoring = _SCORINGS.register
list_scorings = _SCORINGS.names


def scoring_fn(scoring: str | EvaluateFn) -> EvaluateFn:
    """The scoring function a bundle names (or the callable it holds)."""
    if callable(scoring):
        return scoring
    return _SCORINGS.lookup(scoring)


def evaluate(segment: SegmentFn, bundle: DataBundle, data: SampleSet, cfg: Config,
             device: torch.device) -> dict[str, Any]:
    """Score ``segment`` on one split of ``bundle`` with the bundle's scoring. Returns a JSON-ready dict."""
    return scoring_fn(bundle.scoring)(segment, data, cfg, device)


def evaluate_volumes(segment: SegmentFn, bundle: DataBundle, data: SampleSet, cfg: Config, device: torch.device,
                     **kwargs: Any) -> dict[str, Any] | None:
    """Whole-volume scores of a split (``bundle.volume_scoring``), or None where the dataset has none."""
    if bundle.volume_scoring is None:
        return None
    return scoring_fn(bundle.volume_scoring)(segment, data, cfg, device, **kwargs)
