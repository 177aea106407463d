"""Methods: which models, optimisers, step functions and sample streams a training run uses.

A method never owns a loop: ``weakseg.training.loop.fit`` runs every method. A builder returns a
``Method``; adding a method means a builder, its step functions and a config section.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor, nn

from weakseg.registry import Registry

if TYPE_CHECKING:
    from weakseg.config.schema import Config
    from weakseg.data.batch import Batch
    from weakseg.data.datasets import SampleSet
    from weakseg.data.registry import DataBundle


class StepContext(Protocol):
    """What a step function may use; the loop passes its implementation (``weakseg.training.context.LoopContext``).

    Declared here, on the methods' side, so that methods depend on this contract and not on the loop
    (the loop imports methods, never the reverse).
    """

    cfg: Config
    device: torch.device
    generator: torch.Generator          # method noise (A->P codes, mean-teacher perturbations)

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        """bf16 autocast where the run asked for it, else a no-op context."""
        ...

    def update(self, total: Tensor, terms: dict[str, Tensor], optimizers: Sequence[torch.optim.Optimizer]) -> bool:
        """Zero grads, backward ``total`` and step ``optimizers`` unless the loss is non-finite; True if applied."""
        ...


StepFn = Callable[["Method", dict[str, "Batch"], "StepContext"], dict[str, Tensor]]


@dataclass
class Method:
    """Models, optimisers and step functions of one training method.

    ``streams`` maps a stream name to a sample pool of ``weakseg.data.samplers`` (for example
    ``{"p": "p", "a": "a"}``); each step receives one batch per stream. ``segment`` maps images
    (B, C, *S) to logits (B, K, *S) and is what evaluation and prediction call.
    """

    name: str
    models: nn.ModuleDict
    optimizers: dict[str, torch.optim.Optimizer]
    steps: Sequence[StepFn]
    streams: dict[str, str]
    segment: Callable[[Tensor], Tensor]
    panels: Callable[[Tensor, Tensor], dict[str, Tensor]] | None = None   # pictures: (x_P, x_A) -> named images
    eval_only: tuple[str, ...] = ()          # models that stay in eval mode while training (EMA teacher)
    # Extra validation numbers (e.g. GenSeg's translation health): (split, cfg, device) -> metrics, run by the
    # loop under no_grad with the models in eval mode; it must not touch the global RNG or the models.
    diagnose: Callable[[Any, "Config", torch.device], dict[str, Any]] | None = None
    state: dict[str, Any] = field(default_factory=dict)   # extra checkpointed state (tensors / plain types)
    # The view of the training split this method trains on when it is not the dataset's own (the naive
    # baseline reads missing organs as background; drop_incomplete keeps complete volumes): the loop's
    # streams draw from it, and the bundle the builder was given stays untouched.
    train_split: SampleSet | None = None

    def set_training(self, training: bool) -> None:
        for name, model in self.models.items():
            model.train(training and name not in self.eval_only)


MethodBuilder = Callable[["Config", "DataBundle", torch.device], Method]


def _import_builtin() -> None:
    import weakseg.methods.builtin  # noqa: F401  (registers the built-in methods)


_METHODS: Registry[MethodBuilder] = Registry("method", key="method", load=_import_builtin)
register_method = _METHODS.register
list_methods = _METHODS.names


def build_method(cfg: "Config", data: "DataBundle", device: torch.device) -> Method:
    return _METHODS.lookup(cfg.method)(cfg, data, device)


def adam(params: Any, cfg: "Config", *, lr: float | None = None) -> torch.optim.Adam:
    """The reference optimiser: Adam with amsgrad, betas (0.5, 0.999), coupled weight decay."""
    t = cfg.train
    return torch.optim.Adam(params, lr=t.lr if lr is None else lr, betas=tuple(t.betas),
                            weight_decay=t.weight_decay, amsgrad=t.amsgrad)
