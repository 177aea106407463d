"""Two-process data parallelism on CPU (gloo), launched like torchrun: RANK / WORLD_SIZE / MASTER_* env.

Checks: (a) both ranks end with identical weights; (b) 2 ranks x B/2 follow the loss trajectory of
1 rank x B (same global batches, gradients averaged), to float rounding; (c) a run resumes with another
number of processes, 2 -> 1 and 1 -> 2, and lands where the uninterrupted 1-process run does.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tests.training.ddp_toy as ddp_toy
from weakseg.errors import WeaksegError
from weakseg.training.checkpoint import load_checkpoint
from weakseg.training.distributed import World, average_gradients
from weakseg.training.loop import fit

ROOT = Path(__file__).resolve().parents[2]
# Float rounding only: the averaged gradient of two half-batch means equals the full-batch mean gradient up
# to summation order (~1e-7 relative); Adam over 8 steps keeps the difference far below this.
TOL = {"rtol": 1e-4, "atol": 1e-5}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(jobs: list[dict], world_size: int = 2) -> None:
    """Start ``world_size`` worker processes with torchrun's environment and wait for them."""
    port = _free_port()
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world_size),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.training.ddp_toy", json.dumps(jobs)], cwd=ROOT,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(world_size)]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=90)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for r, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"rank {r} failed:\n{out[-3000:]}"


def _losses(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss/bce"] for r in rows if r["split"] == "train"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["models"]["net"]


def test_two_processes_match_one(tmp_path: Path) -> None:
    ref, half = tmp_path / "ref8", tmp_path / "one4"
    ddp_toy.DUMP_DIR = None
    fit(ddp_toy.ddp_config(8), ref, progress=False)                   # 1 rank x B=4, 8 steps
    fit(ddp_toy.ddp_config(4), half, progress=False)                  # 1 rank, 4 steps: resumed by 2 ranks below
    _launch([
        {"kind": "grads", "dump": str(tmp_path / "grads")},
        {"out": str(tmp_path / "ddp8"), "steps": 8, "dump": str(tmp_path / "dump")},   # 2 ranks x B/2
        {"out": str(tmp_path / "ddp4"), "steps": 4},                                   # resumed by 1 rank below
        {"out": str(half), "steps": 8, "resume": True},                                # 1 -> 2 processes
    ])
    fit(ddp_toy.ddp_config(8), tmp_path / "ddp4", resume=True, progress=False)        # 2 -> 1 process

    # Gradient averaging: mean over ranks; a rank without a gradient counts as zero; none anywhere stays None.
    for r in (0, 1):
        g = torch.load(tmp_path / "grads" / f"grads{r}.pt")
        assert torch.equal(g["a"], torch.full((2,), 3.0)) and torch.equal(g["b"], torch.full((2,), 3.0))
        assert g["c"] is None
    # (a) identical weights on both ranks, bit for bit (same averaged gradients, same Adam arithmetic).
    r0, r1 = torch.load(tmp_path / "dump" / "rank0.pt"), torch.load(tmp_path / "dump" / "rank1.pt")
    for key in r0:
        torch.testing.assert_close(r0[key], r1[key], rtol=0, atol=0)
    # (b) the same loss trajectory and end point as one process with the whole batch.
    ref_losses, ddp_losses = _losses(ref), _losses(tmp_path / "ddp8")
    assert len(ref_losses) == len(ddp_losses) == 8
    assert ref_losses[0] != ref_losses[-1]                             # it trains: the comparison means something
    torch.testing.assert_close(torch.tensor(ddp_losses), torch.tensor(ref_losses), **TOL)
    want = _weights(ref)
    for key in want:
        torch.testing.assert_close(r0[key], want[key], **TOL)
        torch.testing.assert_close(_weights(tmp_path / "ddp8")[key], want[key], **TOL)
    # (c) resume with another world size, both ways.
    for run in (tmp_path / "ddp4", half):
        assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 8
        for key in want:
            torch.testing.assert_close(_weights(run)[key], want[key], **TOL)
        torch.testing.assert_close(torch.tensor(_losses(run)), torch.tensor(ref_losses), **TOL)


def test_batch_must_divide_by_world_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("weakseg.training.distributed.init_distributed",
                        lambda device, **_: (World(rank=0, world_size=3), device))
    with pytest.raises(WeaksegError, match=r"train.batch_size=4 is the global batch .* multiple of 3"):
        fit(ddp_toy.ddp_config(2), tmp_path / "run", progress=False)


def test_average_gradients_is_a_no_op_in_one_process() -> None:
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    opt = torch.optim.SGD([p], lr=0.1)
    average_gradients([opt], World())
    assert torch.equal(p.grad, torch.full((3,), 2.0))
