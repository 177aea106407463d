from __future__ import annotations

import json
import math

import pytest
import torch

import tests.toy  # noqa: F401  (registers the toy dataset and method)
from weakseg.config import load_config
from weakseg.errors import WeaksegError
from weakseg.training.checkpoint import load_checkpoint
from weakseg.training.context import NonFiniteLossError
from weakseg.training.loop import fit


def toy_config(**sets: object):
    overrides = ["data.name=toy", "method=toy", "train.batch_size=4", "train.log_every=2", "train.eval_every=3",
                 "train.checkpoint_every=3", "train.lr_discriminator=1.0"]
    overrides += [f"{k}={v}" for k, v in sets.items()]
    return load_config(None, overrides)


def weights(run_dir) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["models"]["net"]


def test_fit_writes_run_folder(tmp_path) -> None:
    out = tmp_path / "run"
    summary = fit(toy_config(**{"train.steps": 6}), out, progress=False)
    assert (out / "config.yaml").is_file() and (out / "checkpoints" / "last.pt").is_file()
    assert (out / "checkpoints" / "best.pt").is_file() and (out / "log.txt").is_file()
    assert any((out / "tb").iterdir())
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["split"] == "train"] == [2, 4, 6]
    assert [r["step"] for r in lines if r["split"] == "valid"] == [3, 6]
    assert summary["best"]["metric"] == "dice_soft_global"
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 6 and ckpt["config"]["train"]["steps"] == 6 and ckpt["weakseg_version"]
    assert not list((out / "checkpoints").glob("*.tmp"))


def test_resume_equals_uninterrupted(tmp_path) -> None:
    """N steps + resume N steps == 2N steps, bit for bit on CPU (stream, RNG, optimiser states)."""
    full, half = tmp_path / "full", tmp_path / "half"
    fit(toy_config(**{"train.steps": 12}), full, progress=False)
    fit(toy_config(**{"train.steps": 6}), half, progress=False)
    fit(toy_config(**{"train.steps": 12}), half, resume=True, progress=False)
    a, b = weights(full), weights(half)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_resume_refuses_changed_config(tmp_path) -> None:
    out = tmp_path / "run"
    fit(toy_config(**{"train.steps": 3}), out, progress=False)
    with pytest.raises(WeaksegError, match="train.lr"):
        fit(toy_config(**{"train.steps": 6, "train.lr": 0.5}), out, resume=True, progress=False)


def test_existing_run_needs_resume_flag(tmp_path) -> None:
    out = tmp_path / "run"
    fit(toy_config(**{"train.steps": 3}), out, progress=False)
    with pytest.raises(WeaksegError, match="--resume"):
        fit(toy_config(**{"train.steps": 3}), out, progress=False)


def test_resume_without_checkpoint_is_clear(tmp_path) -> None:
    with pytest.raises(WeaksegError, match="no checkpoint"):
        fit(toy_config(**{"train.steps": 3}), tmp_path / "none", resume=True, progress=False)


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    fit(toy_config(**{"train.steps": 3}), out, progress=False)
    before = weights(out)
    monkeypatch.setattr(tests.toy, "POISON_FROM_STEP", 4)
    with pytest.raises(NonFiniteLossError, match=r"loss/bce became non-finite at step 4"):
        fit(toy_config(**{"train.steps": 6}), out, resume=True, progress=False)
    after = weights(out)
    for key in before:
        torch.testing.assert_close(before[key], after[key], rtol=0, atol=0)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 3


def test_skip_policy_drops_bad_updates(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tests.toy, "POISON_FROM_STEP", 2)
    out = tmp_path / "run"
    fit(toy_config(**{"train.steps": 4, "train.nonfinite": "skip"}), out, progress=False)
    train_logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_updates"] for r in train_logs if r["split"] == "train"] == [0, 2]


def test_undefined_selection_metric_does_not_stop_training(tmp_path) -> None:
    """A validation split with nothing to score (metric None) keeps training; best.pt follows the last
    checkpoint until the metric has a value; a misspelt metric still fails at the first validation."""
    calls = []

    def sometimes_empty(segment, data, cfg, device):
        calls.append(1)
        value = None if len(calls) == 1 else 0.5
        return {"dice_soft_global": value, "mse": 0.0}

    from weakseg.data.registry import DataBundle, register_dataset

    def build(cfg):
        bundle = tests.toy.build_toy(cfg)
        return DataBundle(splits=bundle.splits, class_names=bundle.class_names, in_channels=1,
                          scoring=sometimes_empty, value_range=bundle.value_range)

    register_dataset("toy_empty_valid")(build)
    out = tmp_path / "run"
    summary = fit(toy_config(**{"train.steps": 6, "data.name": "toy_empty_valid"}), out, progress=False)
    best = load_checkpoint(out / "checkpoints" / "best.pt")
    assert best["step"] == 6 and summary["best"]["value"] == 0.5          # defined at step 6: a real best
    assert "undefined on the validation split" in (out / "log.txt").read_text()
    calls.clear()
    fit(toy_config(**{"train.steps": 3, "data.name": "toy_empty_valid"}), tmp_path / "run3", progress=False)
    assert load_checkpoint(tmp_path / "run3" / "checkpoints" / "best.pt")["step"] == 3   # never defined
    with pytest.raises(WeaksegError, match="not a validation metric"):
        fit(toy_config(**{"train.steps": 3, "train.select_metric": "dice_typo"}), tmp_path / "typo", progress=False)


def test_resume_accepts_a_checkpoint_written_before_a_config_key_existed(tmp_path) -> None:
    """A key added to the schema later (here data.mnist.label_unit) is read as its default, not as a change."""
    out = tmp_path / "run"
    fit(toy_config(**{"train.steps": 3}), out, progress=False)
    path = out / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(path)
    del ckpt["config"]["data"]["mnist"]["label_unit"]
    torch.save(ckpt, path)
    fit(toy_config(**{"train.steps": 6}), out, resume=True, progress=False)
    assert load_checkpoint(path)["step"] == 6


def test_init_from_starts_from_another_runs_weights_only(tmp_path) -> None:
    source = tmp_path / "a"
    fit(toy_config(**{"train.steps": 6}), source, progress=False)
    # lr 0: nothing moves, so the run ends with exactly the weights it started from
    frozen = {"train.steps": 3, "train.lr": 0.0, "train.weight_decay": 0.0}
    fit(toy_config(**frozen), tmp_path / "fresh", progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(weights(source).values(), weights(tmp_path / "fresh").values()))
    out = tmp_path / "b"
    summary = fit(toy_config(**frozen, **{"train.init_from": "../a/checkpoints/last.pt"}), out, progress=False)
    assert summary["start_step"] == 0                     # weights only: its own step count and optimiser
    assert all(torch.equal(a, b) for a, b in zip(weights(source).values(), weights(out).values()))
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["step"] == 3 and ckpt["config"]["train"]["init_from"] == "../a/checkpoints/last.pt"
    assert "initial weights from" in (out / "log.txt").read_text()
    # resuming reads last.pt, never train.init_from: the source may be gone, the key may change
    (source / "checkpoints" / "last.pt").unlink()
    fit(toy_config(**{**frozen, "train.steps": 6}, **{"train.init_from": "../moved/a/last.pt"}), out,
        resume=True, progress=False)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 6


def test_init_from_refuses_missing_or_unfitting_checkpoints(tmp_path) -> None:
    from weakseg.training.checkpoint import save_checkpoint

    with pytest.raises(WeaksegError, match=r"^train.init_from: .*nothing\.pt not found \(a relative path is read"):
        fit(toy_config(**{"train.steps": 2, "train.init_from": "nothing.pt"}), tmp_path / "r1", progress=False)
    other = save_checkpoint({"models": {"segmenter": {}}}, tmp_path / "other.pt")
    with pytest.raises(WeaksegError, match=r"^train.init_from: .* holds models \['segmenter'\], method 'toy' builds "
                                           r"\['net'\]"):
        fit(toy_config(**{"train.steps": 2, "train.init_from": str(other)}), tmp_path / "r2", progress=False)
    shapes = save_checkpoint({"models": {"net": {"net.0.weight": torch.zeros(1)}}}, tmp_path / "shapes.pt")
    with pytest.raises(WeaksegError, match=r"^train.init_from: the weights of 'net' in .* do not fit the model"):
        fit(toy_config(**{"train.steps": 2, "train.init_from": str(shapes)}), tmp_path / "r3", progress=False)
    assert not (tmp_path / "r3" / "checkpoints" / "last.pt").exists()
