"""The reproduction grid runner: one stored result per run, skipping, staleness, redo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from weakseg.reproduce.runner import RunSpec, load_results, mean_std, result_path, run_grid


def _grid(tmp_path: Path, specs, **kw):
    trained: list[str] = []

    def trainer(cfg, run_dir, resume=False):
        trained.append(str(Path(run_dir).relative_to(tmp_path / "runs")))

    def evaluate(run_dir, spec):
        return {"test": {"dice": 0.5 + spec.seed / 10}}

    out = run_grid(specs, runs_root=tmp_path / "runs", results_dir=tmp_path / "results", evaluate=evaluate,
                   command="test", log=lambda m: None, trainer=trainer, **kw)
    return trained, out


def spec(seed: int, *extra: str) -> RunSpec:
    return RunSpec("mnist48_simple", "seg_only", seed, "mnist/mnist48_simple_seg_only",
                   ("train.steps=3", *extra))


def test_each_run_stores_its_result_and_a_rerun_skips_it(tmp_path: Path) -> None:
    trained, out = _grid(tmp_path, [spec(0), spec(1)])
    assert trained == ["mnist48_simple/seg_only/seed0", "mnist48_simple/seg_only/seed1"]
    stored = json.loads(result_path(tmp_path / "results", spec(1)).read_text())
    assert stored["test"]["dice"] == 0.6 and stored["config"]["train"]["steps"] == 3
    assert stored["provenance"]["command"] == "test" and "git_commit" in stored["provenance"]
    again, out2 = _grid(tmp_path, [spec(0), spec(1), spec(2)])
    assert again == ["mnist48_simple/seg_only/seed2"]                       # only the new run trains
    assert [r["seed"] for r in load_results(tmp_path / "results")] == [0, 1, 2]


def test_changed_settings_retrain_but_machine_paths_do_not(tmp_path: Path) -> None:
    _grid(tmp_path, [spec(0, "data.mnist.source=/data/a")])
    moved, _ = _grid(tmp_path, [spec(0, "data.mnist.source=/elsewhere/a")])    # same recipe on another machine
    assert moved == []
    changed, out = _grid(tmp_path, [spec(0, "data.mnist.source=/data/a", "train.lr=0.01")])
    assert changed == ["mnist48_simple/seg_only/seed0"]
    assert "train.lr=0.01" in out[0]["overrides"]
    redo, _ = _grid(tmp_path, [spec(0, "data.mnist.source=/data/a", "train.lr=0.01")], redo=True)
    assert redo == ["mnist48_simple/seg_only/seed0"]


def test_mean_std_ignores_missing_and_non_finite_values() -> None:
    got = mean_std([0.2, None, float("nan"), 0.4])
    assert got["n"] == 2 and got["mean"] == pytest.approx(0.3) and got["std"] == pytest.approx(0.02 ** 0.5)
    assert mean_std([]) == {"mean": None, "std": None, "n": 0}


def test_results_stored_before_a_former_default_was_spelled_out_still_count(tmp_path: Path) -> None:
    _grid(tmp_path, [spec(0)])
    legacy = RunSpec("mnist48_simple", "seg_only", 0, "mnist/mnist48_simple_seg_only",
                     ("train.steps=3", "train.amsgrad=true"), former_defaults=("train.amsgrad=true",))
    skipped, _ = _grid(tmp_path, [legacy])
    assert skipped == []                                     # stored without the override: made the same way
    other = RunSpec("mnist48_simple", "seg_only", 0, "mnist/mnist48_simple_seg_only",
                    ("train.steps=3", "train.amsgrad=false"), former_defaults=("train.amsgrad=true",))
    retrained, _ = _grid(tmp_path, [other])
    assert retrained == ["mnist48_simple/seg_only/seed0"]


def test_stored_result_keeps_the_validation_rows_and_the_data_summary(tmp_path: Path) -> None:
    def trainer(cfg, run_dir, resume=False):
        run_dir.mkdir(parents=True)
        lines = [{"step": 2, "split": "train", "time": 1.0, "loss": 0.5},
                 {"step": 2, "split": "valid", "time": 1.0, "dice_soft_global": 0.3},
                 {"step": 4, "split": "valid", "time": 2.0, "dice_soft_global": 0.4, "translation/object_removed": 0.1},
                 {"step": 4, "split": "valid", "time": 3.0, "dice_soft_global": 0.45}]   # resumed: the last wins
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        (run_dir / "log.txt").write_text("2026-01-01 INFO starting seg_only at step 0/4 on cpu; data mnist: "
                                         "{'n_labelled_train_p': 595, 'n_distinct_labelled_sources': 398}\n")

    from weakseg.reproduce.runner import run_data_info

    out = run_grid([spec(0)], runs_root=tmp_path / "runs", results_dir=tmp_path / "results",
                   evaluate=lambda run_dir, s: {"data": run_data_info(run_dir)}, command="test",
                   log=lambda m: None, trainer=trainer)
    assert out[0]["valid_rows"] == [{"step": 2, "dice_soft_global": 0.3}, {"step": 4, "dice_soft_global": 0.45}]
    assert out[0]["data"] == {"n_labelled_train_p": 595, "n_distinct_labelled_sources": 398}
    assert run_data_info(tmp_path / "nowhere") is None


def test_speed_switches_do_not_make_a_stored_result_stale(tmp_path: Path) -> None:
    _grid(tmp_path, [spec(0)])
    again, _ = _grid(tmp_path, [spec(0, "train.channels_last=true", "train.compile=true")])
    assert again == []                                   # same recipe: how it runs, not what it learns


def test_a_training_folder_made_with_other_settings_is_trained_again(tmp_path: Path) -> None:
    from weakseg.config import load_config
    from weakseg.config.io import dump_yaml

    run_dir = tmp_path / "runs" / "mnist48_simple" / "seg_only" / "seed0"
    run_dir.mkdir(parents=True)
    # another grid sharing the runs root trained this folder for 5 steps; the spec asks 3
    dump_yaml(load_config("mnist/mnist48_simple_seg_only", ["train.steps=5", "train.seed=0"]), run_dir / "config.yaml")
    (run_dir / "marker").write_text("old")
    messages: list[str] = []
    run_grid([spec(0)], runs_root=tmp_path / "runs", results_dir=tmp_path / "results", command="test",
             evaluate=lambda d, s: {"test": {}}, log=messages.append, trainer=lambda cfg, d, resume=False: None)
    assert not (run_dir / "marker").exists()                               # the folder was started afresh
    assert any("made with other settings (train.steps)" in m for m in messages)
    # a folder whose config is the spec's (speed switches aside) is kept
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_yaml(load_config("mnist/mnist48_simple_seg_only", ["train.steps=3", "train.seed=0",
                                                            "train.channels_last=false"]), run_dir / "config.yaml")
    (run_dir / "marker").write_text("same")
    run_grid([spec(0)], runs_root=tmp_path / "runs", results_dir=tmp_path / "results2", command="test",
             evaluate=lambda d, s: {"test": {}}, log=messages.append, trainer=lambda cfg, d, resume=False: None)
    assert (run_dir / "marker").read_text() == "same"
