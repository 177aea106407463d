"""Kill-and-resume: a run killed at any moment resumes from its last complete checkpoint, bit-exact on CPU.

Each trial runs ``weakseg train`` (``weakseg.cli.main.main``) on the toy method in a separate process, kills
it with SIGKILL at a seeded point (during a step, half-way through a checkpoint write, before a checkpoint's
rename, during validation, or at a random wall-clock moment), checks what is on disk, resumes and compares
the final weights with an uninterrupted run. Most trials fork this test process (a real separate process,
killed by the kernel, without paying torch's import time again); two go through ``python -m`` end to end
(``tests.faults.launch_toy``). Every process uses one CPU thread, so results compare bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import tests.toy  # noqa: F401  (registers the toy dataset and method in this process)
from tests.faults.launch_toy import install
from weakseg.cli.main import build_parser, main
from weakseg.config import load_config
from weakseg.training.checkpoint import load_checkpoint
from weakseg.training.loop import fit
from weakseg.training.resume import HISTORY_FILE


def read_history(run_dir: Path) -> list[dict]:
    """Every record of ``RUN/config_history.jsonl``, oldest first (empty when the run has none)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


ROOT = Path(__file__).resolve().parents[2]
STEPS, EVERY = 12, 3
SETTINGS = {"data.name": "toy", "method": "toy", "train.batch_size": 4, "train.log_every": 2,
            "train.eval_every": EVERY, "train.checkpoint_every": EVERY, "train.steps": STEPS, "train.device": "cpu"}
SEED, N_TRIALS = 8, 20   # seeded fault points: kinds and positions drawn below
KINDS = ("step", "ckpt", "replace", "eval", "time")


def _trials() -> list[str]:
    rng = random.Random(SEED)
    out = []
    for i in range(N_TRIALS):
        kind = KINDS[i % len(KINDS)]
        if kind == "step":
            out.append(f"step:{rng.randrange(STEPS)}")
        elif kind in ("ckpt", "replace"):
            out.append(f"{kind}:{rng.randrange(1, 2 * STEPS // EVERY + 1)}")   # last.pt and best.pt saves
        elif kind == "eval":
            out.append(f"eval:{rng.randrange(1, STEPS // EVERY + 1)}")
        else:
            out.append(f"time:{rng.uniform(0.0, 0.5):.3f}")
    return out


def _config_file(tmp: Path, **sets: object) -> Path:
    nested: dict = {}
    for key, value in (SETTINGS | {k.replace("__", "."): v for k, v in sets.items()}).items():
        *sections, name = key.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    path = tmp / "toy.yaml"
    path.write_text(yaml.safe_dump(nested))
    return path


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    build_parser()            # import every verb's modules once, so forked children start warm
    yield
    torch.set_num_threads(threads)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEAKSEG_TEST_")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return env | extra


def _argv(tmp: Path, run: Path, extra: tuple[str, ...] = (), **sets: object) -> list[str]:
    return ["train", str(_config_file(tmp, **sets)), "--out", str(run), "--no-progress", *extra]


def fork(tmp: Path, run: Path, fault: str = "", *, slow: float = 0.0, marker: Path | None = None,
         argv: list[str] | None = None) -> int:
    """Run the CLI in a forked child with ``fault`` installed; returns the child's pid."""
    argv = argv or _argv(tmp, run)
    pid = os.fork()
    if pid == 0:                                   # child: never returns into pytest
        code = 1
        try:
            install(fault, slow, str(marker) if marker else None)
            code = main(argv)
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def wait(pid: int, timeout: float = 60.0) -> int:
    """waitpid with a timeout; returns like Popen.returncode (negative signal number when killed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} did not finish in {timeout} s")


def wait_for(marker: Path, pid: int, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not marker.exists() and time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        assert not done, f"child ended before step 1 (status {status})"
        time.sleep(0.005)


def launch(tmp: Path, run: Path, fault: str = "", *, slow: float = 0.0, marker: Path | None = None,
           extra: tuple[str, ...] = ()) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tests.faults.launch_toy", *_argv(tmp, run, extra)]
    env = _env(WEAKSEG_TEST_FAULT=fault, WEAKSEG_TEST_SLOW=str(slow))
    if marker is not None:
        env["WEAKSEG_TEST_MARKER"] = str(marker)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cfg(**sets: object):
    return load_config(None, [f"{k}={v}" for k, v in (SETTINGS | sets).items()])


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["models"]["net"]


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    run = tmp_path_factory.mktemp("ref") / "run"
    fit(cfg(), run, progress=False)
    return weights(run)


def _expected_last_step(fault: str) -> int | None:
    """The step of the last complete last.pt when the fault hits (None: no last.pt yet)."""
    kind, _, arg = fault.partition(":")
    if kind == "step":          # killed during step K (0-based): checkpoints at done = 3, 6, ... <= K
        done = int(arg) // EVERY * EVERY
    elif kind == "eval":        # the N-th validation is at done = 3N, before that step's checkpoint
        done = (int(arg) - 1) * EVERY
    else:                       # saves alternate best (new best) and last at done = 3N; count is not fixed
        return -1
    return done or None


def check_after_kill(run: Path, fault: str) -> None:
    """The last complete checkpoint is intact and loadable; a half-written one never replaced it."""
    last = run / "checkpoints" / "last.pt"
    expected = _expected_last_step(fault)
    if expected is None:
        assert not last.exists()
    elif last.exists():
        step = int(load_checkpoint(last)["step"])
        assert step % EVERY == 0 and 0 < step <= STEPS
        if expected != -1:
            assert step == expected
    for name in ("best.pt", "last.pt"):
        if (run / "checkpoints" / name).exists():
            load_checkpoint(run / "checkpoints" / name)


def resume_and_compare(run: Path, reference: dict[str, torch.Tensor]) -> None:
    fit(cfg(), run, resume=(run / "checkpoints" / "last.pt").exists(), progress=False)
    assert_same(weights(run), reference)
    assert not list((run / "checkpoints").glob("*.tmp"))


@pytest.mark.parametrize("fault", _trials())
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, reference, fault: str) -> None:
    run = tmp_path / "run"
    if fault.startswith("time:"):
        marker = tmp_path / "started"
        pid = fork(tmp_path, run, slow=0.05, marker=marker)
        wait_for(marker, pid)
        time.sleep(float(fault.split(":")[1]))
        os.kill(pid, signal.SIGKILL)
        wait(pid)
    else:
        assert wait(fork(tmp_path, run, fault)) == -signal.SIGKILL
    check_after_kill(run, fault)
    resume_and_compare(run, reference)


def test_sigkill_during_checkpoint_write_through_python_m(tmp_path, reference) -> None:
    """The real entry point, end to end: ``python -m`` killed half-way through writing a checkpoint."""
    run = tmp_path / "run"
    proc = launch(tmp_path, run, "ckpt:4")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    assert (run / "checkpoints" / "last.pt.tmp").is_file()         # the half-written file is left aside ...
    assert int(load_checkpoint(run / "checkpoints" / "last.pt")["step"]) == EVERY   # ... last.pt untouched
    resume_and_compare(run, reference)


def test_sigterm_through_python_m(tmp_path, reference) -> None:
    run = tmp_path / "run"
    proc = launch(tmp_path, run, "term:4")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    lines = [line for line in err.strip().splitlines() if line.startswith("weakseg train:")]
    assert len(lines) == 1 and "stopped by SIGTERM after step 5" in lines[0] and "--resume" in lines[0]
    assert "Traceback" not in err
    assert int(load_checkpoint(run / "checkpoints" / "last.pt")["step"]) == 5     # the end of step index 4
    resume_and_compare(run, reference)


@pytest.mark.parametrize(("kind", "signum"), [("term", signal.SIGTERM), ("int", signal.SIGINT)])
def test_signal_writes_checkpoint_and_exits_cleanly(tmp_path, reference, kind: str, signum: int) -> None:
    run = tmp_path / "run"
    assert wait(fork(tmp_path, run, f"{kind}:7")) == 128 + signum
    assert int(load_checkpoint(run / "checkpoints" / "last.pt")["step"]) == 8
    resume_and_compare(run, reference)


def test_outside_sigterm_mid_run(tmp_path, reference) -> None:
    run, marker = tmp_path / "run", tmp_path / "started"
    pid = fork(tmp_path, run, slow=0.05, marker=marker)
    wait_for(marker, pid)
    os.kill(pid, signal.SIGTERM)
    assert wait(pid) == 143
    step = int(load_checkpoint(run / "checkpoints" / "last.pt")["step"])
    assert 1 <= step < STEPS
    resume_and_compare(run, reference)


# ------------------------------------------------------------------ a bare --resume continues the stored run
# The config file plans 10x more steps than the run was started with (--set train.steps=12): a bare
# `weakseg train --out RUN --resume` must continue the run as stored (12 steps), not the file's plan.
FILE_STEPS = 10 * STEPS


def _started_with_set(tmp: Path, run: Path) -> list[str]:
    return _argv(tmp, run, ("--set", f"train.steps={STEPS}"), train__steps=FILE_STEPS)


def bare_resume(run: Path, *extra: str) -> int:
    return main(["train", "--out", str(run), "--resume", "--no-progress", *extra])


@pytest.mark.parametrize("fault", ["step:7", "eval:2"])
def test_bare_resume_stops_at_the_stored_steps(tmp_path, reference, fault: str) -> None:
    run = tmp_path / "run"
    assert wait(fork(tmp_path, run, fault, argv=_started_with_set(tmp_path, run))) == -signal.SIGKILL
    assert 0 < int(load_checkpoint(run / "checkpoints" / "last.pt")["step"]) < STEPS
    assert bare_resume(run) == 0
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["step"] == STEPS and last["config"]["train"]["steps"] == STEPS
    assert_same(weights(run), reference)
    history = read_history(run)
    assert [h["event"] for h in history] == ["start", "resume"]
    assert history[0]["overrides"] == [f"train.steps={STEPS}"] and history[1]["changes"] == {}


def test_sigkill_at_a_random_moment_then_bare_resume(tmp_path, reference) -> None:
    """Killed at a seeded random wall-clock moment (possibly before the first checkpoint): a bare resume
    reaches the stored step count with the weights of the uninterrupted run."""
    run, marker = tmp_path / "run", tmp_path / "started"
    pid = fork(tmp_path, run, slow=0.05, marker=marker, argv=_started_with_set(tmp_path, run))
    wait_for(marker, pid)
    time.sleep(random.Random(SEED + 1).uniform(0.0, 0.6))
    os.kill(pid, signal.SIGKILL)
    wait(pid)
    assert bare_resume(run) == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == STEPS
    assert_same(weights(run), reference)


def test_set_on_resume_is_applied_on_top_and_recorded(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(_argv(tmp_path, run, ("--set", "train.steps=6"), train__steps=FILE_STEPS)) == 0
    assert bare_resume(run, "--set", f"train.steps={STEPS}") == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == STEPS
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == STEPS
    last = read_history(run)[-1]
    assert last["event"] == "resume" and last["step"] == 6 and last["overrides"] == [f"train.steps={STEPS}"]
    assert last["changes"] == {"train.steps": [6, STEPS]}
    assert "resumed with changes: train.steps: 6 -> 12" in (run / "log.txt").read_text()
    # a change to what is learned is still refused, naming the key
    capsys.readouterr()
    assert bare_resume(run, "--set", "train.lr=0.5") == 2
    assert "train.lr" in capsys.readouterr().err


def test_config_file_with_resume_does_not_override_the_stored_run(tmp_path) -> None:
    run = tmp_path / "run"
    config = str(_config_file(tmp_path, train__steps=FILE_STEPS))
    assert main(["train", config, "--out", str(run), "--no-progress", "--set", "train.steps=6"]) == 0
    # resumed with the file (which plans FILE_STEPS) and no --set: the stored 6 steps are already done
    assert main(["train", config, "--out", str(run), "--no-progress", "--resume"]) == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 6
    ignored = read_history(run)[-1]["ignored_from_file"]
    assert ignored == {"train.steps": {"stored": 6, "file": FILE_STEPS}}
