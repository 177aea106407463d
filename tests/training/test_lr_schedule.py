from __future__ import annotations

import pytest
import torch

import tests.toy  # noqa: F401  (registers the toy dataset and method)
from tests.training.test_loop import toy_config, weights
from weakseg.config import load_config
from weakseg.errors import WeaksegError
from weakseg.training import loop
from weakseg.training.checkpoint import load_checkpoint
from weakseg.training.loop import fit
from weakseg.training.lr_schedule import LrSchedule, lr_factor


def test_poly_factor_matches_nnunet_formula() -> None:
    assert lr_factor("constant", 7, 10) == 1.0
    assert lr_factor("poly", 0, 10) == 1.0
    assert lr_factor("poly", 5, 10) == pytest.approx(0.5 ** 0.9)
    assert lr_factor("poly", 9, 10, exponent=1.0) == pytest.approx(0.1)
    assert lr_factor("poly", 10, 10) == 0.0


def test_schedule_scales_every_group_from_its_own_base_rate() -> None:
    a = torch.nn.Linear(2, 2)
    b = torch.nn.Linear(2, 2)
    opts = {"gen": torch.optim.Adam(a.parameters(), lr=1e-3),
            "disc": torch.optim.Adam([{"params": b.weight, "lr": 4e-3}, {"params": b.bias, "lr": 2e-3}])}
    sched = LrSchedule(opts, "poly", 4, exponent=1.0)
    sched.apply(2)
    assert opts["gen"].param_groups[0]["lr"] == pytest.approx(5e-4)
    assert [g["lr"] for g in opts["disc"].param_groups] == pytest.approx([2e-3, 1e-3])
    sched.apply(0)                      # from the base rates, not the decayed ones
    assert opts["gen"].param_groups[0]["lr"] == pytest.approx(1e-3)
    constant = LrSchedule(opts, "constant", 4)
    constant.apply(3)
    assert opts["gen"].param_groups[0]["lr"] == pytest.approx(1e-3)


def test_poly_run_ends_at_a_small_rate_and_logs_the_factor(tmp_path) -> None:
    out = tmp_path / "run"
    fit(toy_config(**{"train.steps": 6, "train.lr_schedule": "poly", "train.lr": 0.1}), out, progress=False)
    groups = load_checkpoint(out / "checkpoints" / "last.pt")["optimizers"]
    lrs = [g["lr"] for sd in groups.values() for g in sd["param_groups"]]
    assert lrs and all(lr < 0.1 * lr_factor("poly", 4, 6) for lr in lrs)
    assert "lr_factor" in (out / "metrics.jsonl").read_text()


def test_constant_is_the_default_and_leaves_results_unchanged(tmp_path) -> None:
    assert load_config(None).train.lr_schedule == "constant"
    fit(toy_config(**{"train.steps": 4}), tmp_path / "a", progress=False)
    fit(toy_config(**{"train.steps": 4, "train.lr_schedule": "constant"}), tmp_path / "b", progress=False)
    for key, value in weights(tmp_path / "a").items():
        torch.testing.assert_close(value, weights(tmp_path / "b")[key], rtol=0, atol=0)
    assert "lr_factor" not in (tmp_path / "a" / "metrics.jsonl").read_text()


def test_poly_resume_after_a_crash_equals_uninterrupted(tmp_path, monkeypatch) -> None:
    """The factor depends on the step alone: a run killed after its step-6 checkpoint resumes bit for bit."""
    cfg = toy_config(**{"train.steps": 12, "train.lr_schedule": "poly", "train.lr": 0.05})
    fit(cfg, tmp_path / "full", progress=False)
    real = loop._train_step

    def crash_at_7(run, step, augment):
        if step == 7:
            raise RuntimeError("simulated crash")
        return real(run, step, augment)

    monkeypatch.setattr(loop, "_train_step", crash_at_7)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(cfg, tmp_path / "crashed", progress=False)
    monkeypatch.setattr(loop, "_train_step", real)
    assert load_checkpoint(tmp_path / "crashed" / "checkpoints" / "last.pt")["step"] == 6
    fit(cfg, tmp_path / "crashed", resume=True, progress=False)
    for key, value in weights(tmp_path / "full").items():
        torch.testing.assert_close(value, weights(tmp_path / "crashed")[key], rtol=0, atol=0)


def test_bad_schedule_options_are_refused_naming_the_key() -> None:
    with pytest.raises(WeaksegError, match=r"train.lr_schedule must be one of 'constant', 'poly', got 'cosine'"):
        load_config(None, ["train.lr_schedule=cosine"])
    with pytest.raises(WeaksegError, match="train.lr_poly_exponent must be a finite number > 0"):
        load_config(None, ["train.lr_poly_exponent=0"])
