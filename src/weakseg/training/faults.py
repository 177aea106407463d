"""Numerical faults beyond one bad step: rollback after repeated skipped updates.

``LoopContext.update`` skips (``train.nonfinite=skip``) or stops (``stop``) on a non-finite loss or
gradient (``weakseg.training.gradcheck``). One skipped update is noise; many in a row mean the weights
or the data are bad. ``FaultGuard`` counts consecutive steps with a skipped update; after
``train.max_skipped`` of them it reloads models, optimisers and method state from ``checkpoints/last.pt``
(the data stream moves on, so the same batches are not replayed) and logs it; after
``train.max_rollbacks`` rollbacks it gives up with ``NonFiniteLossError`` naming the loss term and step.
"""

from __future__ import annotations

import logging
from pathlib import Path

from weakseg.config.schema import Config
from weakseg.errors import WeaksegError
from weakseg.methods.registry import Method
from weakseg.training.checkpoint import load_checkpoint
from weakseg.training.context import LoopContext, NonFiniteLossError

_log = logging.getLogger("weakseg")


class FaultGuard:
    """Rolls back to the last good checkpoint after ``max_skipped`` consecutive steps with a skipped update."""

    def __init__(self, cfg: Config, method: Method, checkpoint: Path) -> None:
        self.max_skipped = cfg.train.max_skipped
        self.max_rollbacks = cfg.train.max_rollbacks
        self.method = method
        self.checkpoint = Path(checkpoint)
        self.streak = 0          # consecutive steps with at least one skipped update
        self.rollbacks = 0
        self._seen = 0           # ctx.skipped at the previous step

    def after_step(self, step: int, ctx: LoopContext) -> None:
        """Call once per step after the step functions; may reload weights or raise."""
        skipped_now = ctx.skipped > self._seen
        self._seen = ctx.skipped
        self.streak = self.streak + 1 if skipped_now else 0
        if self.max_skipped <= 0 or self.streak < self.max_skipped:
            return
        last = getattr(ctx, "last_fault", None) or f"a non-finite loss or gradient at step {step}"
        if self.rollbacks >= self.max_rollbacks:
            raise NonFiniteLossError(
                f"{last}; {self.streak} consecutive updates skipped and {self.rollbacks} rollback(s) to the last "
                f"good checkpoint did not help (train.max_rollbacks={self.max_rollbacks}); the run stopped and "
                f"{self.checkpoint} is kept: lower train.lr, check the data, or set train.amp=off")
        if not self.checkpoint.is_file():
            raise NonFiniteLossError(
                f"{last}; {self.streak} consecutive updates skipped before any checkpoint existed, so there is "
                "nothing to roll back to: lower train.lr or train.checkpoint_every, or check the data")
        restored = rollback(self.method, self.checkpoint)
        self.rollbacks += 1
        self.streak = 0
        _log.warning(f"step {step + 1}: {last}; {self.max_skipped} consecutive updates skipped: rolled back models "
                     f"and optimisers to {self.checkpoint.name} (step {restored}), rollback {self.rollbacks}/"
                     f"{self.max_rollbacks}; the data stream continues")


def rollback(method: Method, checkpoint: Path) -> int:
    """Reload models, optimisers and method state from ``checkpoint``; returns its step."""
    ckpt = load_checkpoint(checkpoint)
    try:
        for name, sd in ckpt["models"].items():
            method.models[name].load_state_dict(sd)
        for name, sd in ckpt["optimizers"].items():
            method.optimizers[name].load_state_dict(sd)
    except (KeyError, RuntimeError) as err:
        raise WeaksegError(f"{checkpoint}: cannot roll back, the checkpoint does not fit this run "
                           f"({str(err).splitlines()[0][:160]})") from None
    method.state.update(ckpt.get("method_state") or {})
    return int(ckpt["step"])
