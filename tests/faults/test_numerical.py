"""Numerical faults: non-finite losses and gradients, the stop/skip policy, rollback and giving up."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tests.toy
from tests.training.test_loop import toy_config, weights
from weakseg.errors import WeaksegError
from weakseg.training.checkpoint import load_checkpoint
from weakseg.training.context import NonFiniteLossError, LoopContext
from weakseg.training.gradcheck import grads_finite
from weakseg.training.loop import fit


def poisoned_step(bad_steps: range, *, gradient: bool):
    """A toy step whose loss (or only its gradient) is non-finite at ``bad_steps``."""

    def step(method, batches, ctx):
        b = batches["labelled"]
        logits = method.models["net"](b.image)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, b.mask.float())
        if ctx.step in bad_steps:
            if gradient:   # value 0, gradient NaN: d sqrt(u)/du is inf at u = 0, times 0
                loss = loss + (logits * 0).sqrt().sum() * 0
            else:
                loss = loss * float("nan")
        ctx.update(loss, {"loss/bce": loss}, [method.optimizers["net"]])
        return {"loss/bce": loss.detach()}

    return step


@pytest.fixture
def poison(monkeypatch):
    def apply(bad_steps: range, *, gradient: bool = False) -> None:
        monkeypatch.setattr(tests.toy, "toy_step", poisoned_step(bad_steps, gradient=gradient))
    return apply


def all_finite(run) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in weights(run).values())


def test_grads_finite_flags_nan_and_inf() -> None:
    p = nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1)
    assert bool(grads_finite([opt]))                       # no gradient yet
    for bad in (float("nan"), float("inf"), -float("inf")):
        p.grad = torch.tensor([1.0, bad, 0.0])
        assert not bool(grads_finite([opt]))
    p.grad = torch.tensor([1e30, -1e30, 0.0])              # huge but finite: a sum of squares would overflow
    assert bool(grads_finite([opt]))


def test_nonfinite_gradient_with_finite_loss_stops_naming_term_and_step(tmp_path, poison) -> None:
    out = tmp_path / "run"
    fit(toy_config(**{"train.steps": 3}), out, progress=False)
    before = weights(out)
    poison(range(4, 100), gradient=True)
    with pytest.raises(NonFiniteLossError, match=r"the gradient of loss loss/bce became non-finite at step 4"):
        fit(toy_config(**{"train.steps": 6}), out, resume=True, progress=False)
    after = weights(out)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 3


def test_nonfinite_gradient_skip_keeps_weights_finite(tmp_path, poison) -> None:
    poison(range(2, 4), gradient=True)
    out = tmp_path / "run"
    fit(toy_config(**{"train.steps": 6, "train.nonfinite": "skip"}), out, progress=False)
    assert all_finite(out)


def test_deferred_check_as_on_gpu_names_term_and_step(tmp_path, poison, monkeypatch) -> None:
    """The GPU path (no host sync per step) on CPU: the fault surfaces at the next log/checkpoint check."""
    monkeypatch.setattr(LoopContext, "check_every_step", property(lambda self: False))
    out = tmp_path / "run"
    fit(toy_config(**{"train.steps": 3}), out, progress=False)
    poison(range(4, 5), gradient=True)                     # step 4 only; the next check is at step 6
    with pytest.raises(NonFiniteLossError, match=r"gradient of loss loss/bce became non-finite at step 4"):
        fit(toy_config(**{"train.steps": 9}), out, resume=True, progress=False)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 3
    assert all_finite(out)


def test_repeated_skips_roll_back_to_last_checkpoint(tmp_path, poison) -> None:
    poison(range(4, 6))                                    # two bad steps in a row after the step-3 checkpoint
    out = tmp_path / "run"
    fit(toy_config(**{"train.steps": 9, "train.nonfinite": "skip", "train.max_skipped": 2}), out, progress=False)
    log = (out / "log.txt").read_text()
    assert "loss term loss/bce became non-finite at step 5" in log
    assert "rolled back models and optimisers to last.pt (step 3), rollback 1/3" in log
    assert all_finite(out) and load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 9


def test_rollback_restores_checkpoint_weights(tmp_path, poison, monkeypatch) -> None:
    """Right after a rollback the model holds exactly the weights of last.pt."""
    out = tmp_path / "run"
    fit(toy_config(**{"train.steps": 3}), out, progress=False)
    saved = weights(out)
    poison(range(3, 100))
    seen = {}
    import weakseg.training.faults as faults

    original = faults.rollback

    def spy(method, checkpoint):
        step = original(method, checkpoint)
        seen.update({k: v.clone() for k, v in method.models["net"].state_dict().items()})
        return step

    monkeypatch.setattr(faults, "rollback", spy)
    with pytest.raises(NonFiniteLossError):
        fit(toy_config(**{"train.steps": 12, "train.nonfinite": "skip", "train.max_skipped": 2,
                          "train.max_rollbacks": 1}), out, resume=True, progress=False)
    assert seen and all(torch.equal(seen[k], saved[k]) for k in saved)


def test_gives_up_after_max_rollbacks(tmp_path, poison) -> None:
    poison(range(4, 1000))
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"loss term loss/bce became non-finite at step \d+; 2 consecutive "
                                                 r"updates skipped and 2 rollback\(s\)") as err:
        fit(toy_config(**{"train.steps": 30, "train.nonfinite": "skip", "train.max_skipped": 2,
                          "train.max_rollbacks": 2}), out, progress=False)
    assert "lower train.lr" in str(err.value)
    assert all_finite(out)                                 # skipped updates never reach the weights


def test_no_checkpoint_to_roll_back_to(tmp_path, poison) -> None:
    poison(range(0, 1000))
    with pytest.raises(NonFiniteLossError, match="nothing to roll back to"):
        fit(toy_config(**{"train.steps": 6, "train.nonfinite": "skip", "train.max_skipped": 2}), tmp_path / "r",
            progress=False)


def test_negative_max_skipped_is_a_config_error() -> None:
    with pytest.raises(WeaksegError, match="train.max_skipped must be >= 0"):
        toy_config(**{"train.max_skipped": -1})
