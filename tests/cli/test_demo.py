"""``weakseg demo``: an estimate first, progress off a terminal, "finished", a resume hint that works, a table."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from weakseg.cli import demo
from weakseg.cli.main import main
from weakseg.training.progress import progress_bar
from weakseg.training.signals import TrainingInterrupted

TINY = []
for _key in ("data.mnist.n_train=160", "data.mnist.n_valid=24", "data.mnist.n_test=24",
             "data.mnist.labeled_fraction=0.05", "model.width=0.0625", "train.batch_size=4"):
    TINY += ["--set", _key]


def test_estimate_scales_the_measured_figures() -> None:
    total_only = {"wall_time_s": 600.0, "steps": 800}            # the first bench_demo.json format
    assert demo.estimate_seconds([("seg_only", 800), ("ae", 800), ("genseg", 800)], total_only) == pytest.approx(600)
    assert demo.estimate_seconds([("genseg", 400)], total_only) == pytest.approx(100)
    per_method = {"timings": {"genseg": {"train_s": 300.0, "trained_steps": 800, "eval_s": 20.0}},
                  "wall_time_s": 600.0}
    assert demo.estimate_seconds([("genseg", 400)], per_method) == pytest.approx(170)
    assert demo.estimate_seconds([("genseg", 400)], {}) is None


def test_the_repository_measurement_gives_an_estimate_in_minutes() -> None:
    bench = demo.load_bench(demo.BENCH_FILE)
    assert bench is not None, f"{demo.BENCH_FILE} is missing: run benchmarks/bench_demo.py"
    line = demo.estimate_line([(m, demo.DEMO_STEPS) for m in demo.DEMO_METHODS], bench)
    assert line.startswith("estimate: about ") and " min " in line and "bench_demo.json" in line
    assert demo.estimate_line([("seg_only", 0)], bench).startswith("estimate: every run is finished")


def test_progress_off_a_terminal_is_lines_with_rate_and_eta() -> None:
    log = io.StringIO()                           # not a terminal: tqdm alone would draw \r redraws or nothing
    bar = progress_bar(total=10, initial=2, desc="genseg", show=None, stream=log)
    for _ in range(8):
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert lines and "\r" not in log.getvalue()
    assert lines[-1].startswith("genseg: step 10/10 (100%)") and "steps/s" in lines[-1] and "ETA" in lines[-1]
    quiet = io.StringIO()
    progress_bar(total=3, initial=0, desc="x", show=False, stream=quiet).close()
    assert quiet.getvalue() == ""


def test_an_interrupted_demo_says_how_to_resume_it(tmp_path, monkeypatch, capsys) -> None:
    def interrupted(cfg, run_dir, **kwargs):
        raise TrainingInterrupted(2, 5, Path(run_dir) / "checkpoints" / "last.pt")

    monkeypatch.setattr("weakseg.training.loop.fit", interrupted)
    assert main(["demo", "--out", str(tmp_path / "d"), "--steps", "10", "--methods", "seg_only", *TINY[:2]]) == 130
    err = capsys.readouterr().err
    assert "make demo" in err and "--resume" not in err
    assert f"weakseg demo --out {tmp_path / 'd'} --steps 10 --methods seg_only --set data.mnist.n_train=160" in err


def test_resume_command_names_only_what_differs_from_the_defaults() -> None:
    args = argparse.Namespace(out=demo.DEMO_OUT, steps=demo.DEMO_STEPS, methods=list(demo.DEMO_METHODS), overrides=[])
    assert demo.resume_command(args) == "`weakseg demo`"


def test_tiny_demo_prints_estimate_finished_and_readings(tmp_path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "--steps", "2", "--methods", "seg_only", *TINY]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert out.splitlines()[0].startswith("estimate: ")
    assert "seg_only: test split evaluated" in out and "reading the columns:" in out
    for column, _ in demo.READINGS:
        assert f"\n  {column} " in out
    assert "FP img rate" in out and "healthy" in out
    assert "step 2/2 (100%)" in captured.err                    # progress lines: stderr is not a terminal here
    log = (tmp_path / "demo" / "seg_only" / "log.txt").read_text()
    assert "finished seg_only: 2 steps in" in log and "stopped" not in log
    assert (tmp_path / "demo" / "demo_summary.json").is_file()
