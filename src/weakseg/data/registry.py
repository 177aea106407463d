"""Dataset builders by name: ``data.name`` in a config picks one.

A builder turns a config into a ``DataBundle``: its splits (``SampleSet``s), what the model needs to
know (channels, classes) and which scoring its splits get (named here, run by ``weakseg.evaluation``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from weakseg.data.datasets import SampleSet
from weakseg.errors import WeaksegError
from weakseg.registry import Registry

if TYPE_CHECKING:
    from weakseg.config.schema import Config

SegmentFn = Callable[[Tensor], Tensor]          # images (B, C, *S) -> logits (B, K, *S)
EvaluateFn = Callable[[SegmentFn, SampleSet, "Config", torch.device], dict[str, Any]]


@dataclass
class DataBundle:
    """Everything a method and the loop need to know about a dataset."""

    splits: dict[str, SampleSet]
    class_names: tuple[str, ...]
    in_channels: int
    # How a split is scored: a name registered in ``weakseg.evaluation`` (image_set, organs), or a callable
    # ``fn(segment, split, cfg, device) -> metrics`` for a dataset of one's own.
    scoring: str | EvaluateFn = "image_set"
    value_range: tuple[float, float] = (-1.0, 1.0)   # images outside this range are rejected
    # Whole-volume scoring of a split (BraTS: brats_volumes), reported under "volume" beside the slice
    # metrics; during training at every ``volume_every``-th evaluation (0 = never).
    volume_scoring: str | EvaluateFn | None = None
    volume_every: int = 1
    value_range_display: tuple[float, float] = (-1.0, 1.0)   # intensity window for pictures
    info: dict[str, Any] = field(default_factory=dict)
    # What volume prediction needs to know about the training data (JSON-ready; stored in checkpoints as
    # ``data_contract``, e.g. ``weakseg.data.organs.organ_contract``); None where nothing is needed.
    contract: dict[str, Any] | None = None

    def split(self, name: str) -> SampleSet:
        if name not in self.splits:
            raise WeaksegError(f"unknown split {name!r}; this dataset has {', '.join(self.splits)}")
        return self.splits[name]


def _import_builtin() -> None:
    # Builders register themselves on import; importing here keeps `weakseg.data` light to import.
    import weakseg.data.builders  # noqa: F401


_DATASETS: Registry[Callable[["Config"], DataBundle]] = Registry("dataset", key="data.name", load=_import_builtin)
register_dataset = _DATASETS.register


def build_data(cfg: "Config") -> DataBundle:
    """The ``DataBundle`` for ``cfg.data.name``; unknown names list the available ones."""
    return _DATASETS.lookup(cfg.data.name)(cfg)
