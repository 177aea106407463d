"""Learning-rate schedules: the factor every optimiser's base learning rate is multiplied by at each step.

``constant`` keeps the configured rates (the GenSeg reference trains that way). ``poly`` is nnU-Net's
polynomial decay, ``lr_t = lr_0 · (1 - t / steps) ** exponent`` (exponent 0.9 there): a run scored at its
last checkpoint ends at a small step size instead of wherever the last constant-rate step left it.

The factor is a function of the step alone, so resuming needs no scheduler state: the base rates are read
from the freshly built optimisers (before a checkpoint's state, which holds decayed rates, is loaded).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from weakseg.config.choices import LrScheduleName


def lr_factor(schedule: LrScheduleName, step: int, steps: int, exponent: float = 0.9) -> float:
    """The multiplier of the base rate for the update made at ``step`` (0-based) of ``steps``."""
    if schedule == "constant":
        return 1.0
    return max(0.0, 1.0 - step / steps) ** exponent


class LrSchedule:
    """Sets ``lr`` of every parameter group of ``optimizers`` to base rate x ``lr_factor`` before a step."""

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer], schedule: LrScheduleName, steps: int,
                 exponent: float = 0.9) -> None:
        self.optimizers = optimizers
        self.schedule, self.steps, self.exponent = schedule, steps, exponent
        self.base = {name: [float(g["lr"]) for g in opt.param_groups] for name, opt in optimizers.items()}

    @property
    def active(self) -> bool:
        return self.schedule != "constant"

    def apply(self, step: int) -> float:
        """Set the rates for ``step``; returns the factor."""
        factor = lr_factor(self.schedule, step, self.steps, self.exponent)
        if self.active:
            for name, opt in self.optimizers.items():
                for group, base in zip(opt.param_groups, self.base[name]):
                    group["lr"] = base * factor
        return factor
