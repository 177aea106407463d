"""CLI smoke runs: every verb through ``weakseg.cli.main.main`` on tiny settings, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from weakseg.cli.main import main

TINY = ["--set", "data.mnist.n_train=160", "--set", "data.mnist.n_valid=24", "--set", "data.mnist.n_test=24",
        "--set", "data.mnist.labeled_fraction=0.05", "--set", "model.width=0.0625", "--set", "train.batch_size=4",
        "--set", "train.steps=4", "--set", "train.eval_every=2", "--set", "train.checkpoint_every=2",
        "--set", "train.log_every=2", "--no-progress"]

METHOD_CONFIGS = ["seg_only", "ae", "mean_teacher", "genseg", "genseg_sepdec"]


@pytest.mark.parametrize("method", METHOD_CONFIGS)
def test_train_evaluate_show_every_method(tmp_path, method: str, capsys) -> None:
    run = tmp_path / method
    assert main(["train", f"mnist/mnist48_simple_{method}.yaml", "--out", str(run), *TINY]) == 0
    for name in ("config.yaml", "metrics.jsonl", "log.txt", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    assert main(["evaluate", str(run), "--split", "test"]) == 0
    report = json.loads((run / "eval_test.json").read_text())
    m = report["metrics"]
    for key in ("dice_per_image", "dice_hard_global", "dice_soft_global", "fp_image_rate", "fp_area"):
        assert key in m
    assert m["dice_per_image"]["n"] == m["n_p"] > 0 and m["n_a"] > 0
    assert 0.0 <= m["dice_soft_global"] <= 1.0 and 0.0 <= m["fp_image_rate"] <= 1.0
    assert main(["show", str(run), "--n", "3"]) == 0
    assert (run / "pictures" / "test_P.png").is_file() and (run / "pictures" / "test_A.png").is_file()


def test_resume_through_cli(tmp_path) -> None:
    run = tmp_path / "run"
    assert main(["train", "mnist/mnist48_simple_seg_only.yaml", "--out", str(run), *TINY]) == 0
    assert main(["train", "mnist/mnist48_simple_seg_only.yaml", "--out", str(run), *TINY,
                 "--set", "train.steps=6", "--resume"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 6


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "mnist/nope.yaml"], "not found"),
    (["train", "mnist/mnist48_simple_seg_only.yaml", "--set", "train.stepz=3"], "did you mean 'steps'"),
    (["train", "mnist/mnist48_simple_seg_only.yaml", "--set", "data.preset=mnist99"], "unknown preset"),
    (["train", "mnist/mnist48_simple_seg_only.yaml", "--set", "data.mnist.labeled_fraction=2"],
     "labeled_fraction must be in"),
    (["train", "mnist/mnist48_simple_seg_only.yaml", "--set", "data.mnist.source=/no/such/folder"],
     "/no/such/folder"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, message, capsys) -> None:
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "r" / "checkpoints" / "last.pt").exists()


def test_evaluate_without_checkpoint(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path / "empty")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_python_dash_m_help() -> None:
    out = subprocess.run([sys.executable, "-m", "weakseg", "train", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--resume" in out.stdout and "--set" in out.stdout


def test_demo_runs_end_to_end_on_tiny_settings(tmp_path, capsys) -> None:
    sets = []
    for key in ("data.mnist.n_train=160", "data.mnist.n_valid=24", "data.mnist.n_test=24",
                "data.mnist.labeled_fraction=0.05", "model.width=0.0625", "train.batch_size=4"):
        sets += ["--set", key]
    assert main(["demo", "--out", str(tmp_path / "demo"), "--steps", "2", *sets]) == 0
    out = capsys.readouterr().out
    for method in ("seg_only", "ae", "genseg"):
        assert method in out and (tmp_path / "demo" / method / "eval_test.json").is_file()
        assert (tmp_path / "demo" / method / "pictures" / "test_P.png").is_file()
    # a second call reuses the finished runs instead of training again
    assert main(["demo", "--out", str(tmp_path / "demo"), "--steps", "2", *sets]) == 0
    assert "training" not in capsys.readouterr().out
