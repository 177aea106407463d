"""The loop's side of a step: device, autocast, noise generator and the guarded update (``LoopContext``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from weakseg.config.schema import Config
from weakseg.errors import WeaksegError
from weakseg.training.distributed import World, all_true, average_gradients
from weakseg.training.gradcheck import grads_finite


class NonFiniteLossError(WeaksegError):
    """A loss term became NaN or infinite; the message names the term and the step."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise WeaksegError(f"train.device={name!r} but no CUDA device is available; use --set train.device=cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise WeaksegError(f"train.device={name!r} is not a device; use auto, cpu or cuda") from None


def amp_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA when asked or by default; CPU runs stay fp32."""
    if cfg.train.amp == "off" or device.type != "cuda":
        return None
    return torch.bfloat16


@dataclass
class LoopContext:
    """Per-run state shared by step functions (one instance per run): the loop's ``StepContext``
    (``weakseg.methods.registry``; methods see only that protocol, so they never import the loop).

    Under ``torchrun`` (``world.world_size`` > 1) each rank holds its share of the global batch, and
    ``update`` averages gradients across ranks. Every rank must therefore call ``update`` the same number of
    times per step, in the same order: a step function must not skip an update because of its local batch
    (pass a loss that does not require grad instead; ``update`` then steps nothing but still takes part).
    """

    cfg: Config
    device: torch.device
    generator: torch.Generator                 # method noise (A->P codes, mean-teacher perturbations)
    dtype: torch.dtype | None = None
    step: int = 0
    skipped: int = 0                            # updates dropped by train.nonfinite=skip
    world: World = field(default_factory=World)
    last_fault: str | None = None               # the latest non-finite loss/gradient, for logs and FaultGuard
    _pending: list[tuple[int, Tensor, dict[str, Tensor]]] = field(default_factory=list)

    @property
    def check_every_step(self) -> bool:
        # On CPU the check costs nothing; on GPU it would sync every step, so "stop" defers it.
        return self.device.type != "cuda" or self.cfg.train.nonfinite == "skip"

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def update(self, total: Tensor, terms: dict[str, Tensor], optimizers: Sequence[torch.optim.Optimizer]) -> bool:
        """Zero grads, backward ``total``, step ``optimizers`` unless the loss is non-finite.

        ``total`` is cast to float32 first (under bf16 autocast a loss may come out in bf16). Under DDP the
        finite check holds on every rank or on none, and gradients are averaged across ranks before the step.
        Returns whether the update was applied (always True when the check is deferred on GPU).
        """
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        total = total.float()
        finite = all_true(torch.isfinite(total.detach()), self.world)   # a collective under DDP, no host sync
        if self.check_every_step and not bool(finite):
            self._fault(self.step, terms)              # raises under "stop"
            self.skipped += 1
            return False
        if total.requires_grad:
            total.backward()
        average_gradients(optimizers, self.world)      # first: a NaN on any rank reaches every rank's check
        # A finite loss can still give non-finite gradients (an overflow in backward): checked like the loss,
        # deferred on GPU, so that no NaN reaches the weights.
        grads_ok = grads_finite(optimizers)
        if self.check_every_step:
            if not bool(grads_ok):
                self._fault(self.step, terms)
                self.skipped += 1
                return False
        else:
            self._pending.append((self.step, finite & grads_ok, {k: v.detach() for k, v in terms.items()}))
        for opt in optimizers:
            opt.step()
        return True

    def _fault(self, step: int, terms: dict[str, Tensor]) -> None:
        bad = [name for name, value in terms.items() if not bool(torch.isfinite(value.detach()).all())]
        elsewhere = " (or a loss on another rank)" if self.world.enabled else ""
        what = f"loss term {', '.join(bad)}" if bad else f"the gradient of loss {' + '.join(terms) or 'total'}{elsewhere}"
        self.last_fault = f"{what} became non-finite at step {step}"      # read by FaultGuard
        if self.cfg.train.nonfinite == "stop":
            raise NonFiniteLossError(
                f"{self.last_fault}; the run stopped and the last good "
                "checkpoint is kept (resume with --resume, lower train.lr, or set train.nonfinite=skip)")

    def check_pending(self) -> None:
        """Raise for a deferred non-finite loss (called before logging and before every checkpoint)."""
        if not self._pending:
            return
        flags = torch.stack([f for _, f, _ in self._pending]).cpu()
        pending, self._pending = self._pending, []
        if bool(flags.all()):
            return
        first = int((~flags).nonzero()[0])
        step, _, terms = pending[first]
        self._fault(step, terms)
