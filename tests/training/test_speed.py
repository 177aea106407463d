"""The speed switches change how a run executes, not what it learns (beyond float rounding)."""

from __future__ import annotations

import json

import pytest
import torch

import tests.training.ddp_toy as ddp_toy
from weakseg.config import load_config
from weakseg.data.samplers import BatchStream
from weakseg.errors import WeaksegError
from weakseg.training.checkpoint import load_checkpoint
from weakseg.training.context import LoopContext
from weakseg.training.loop import fit
from tests.toy import toy_split


def _losses(run) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss/bce"] for r in rows if r["split"] == "train"]


def _run(tmp_path, name: str, *sets: str):
    cfg = load_config(None, ["data.name=toy", "method=ddp_toy", "train.batch_size=4", "train.steps=4", "train.log_every=1",
                             "train.eval_every=4", "train.checkpoint_every=4", "train.lr=0.05", *sets])
    ddp_toy.DUMP_DIR = None
    fit(cfg, tmp_path / name, progress=False)
    return tmp_path / name


def test_compile_and_channels_last_keep_losses_and_checkpoint_keys(tmp_path) -> None:
    """torch.compile (dynamo with the eager backend: traced, not code-generated, to stay fast on CPU) and
    channels_last give the eager losses; checkpoints keep the plain module keys (no ``_orig_mod.``)."""
    eager = _run(tmp_path, "eager")
    fast = _run(tmp_path, "fast", "train.compile=true", "train.compile_backend=eager", "train.channels_last=true")
    torch.testing.assert_close(torch.tensor(_losses(fast)), torch.tensor(_losses(eager)), rtol=1e-5, atol=1e-6)
    a = load_checkpoint(eager / "checkpoints" / "last.pt")["models"]["net"]
    b = load_checkpoint(fast / "checkpoints" / "last.pt")["models"]["net"]
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key].contiguous(), rtol=1e-5, atol=1e-6)


def test_bad_compile_mode_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(WeaksegError, match="train.compile_mode"):
        _run(tmp_path, "bad", "train.compile_mode=fastest")


def test_update_casts_a_bf16_loss_to_float32() -> None:
    cfg = load_config(None, [])
    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([w], lr=1.0)
    ctx = LoopContext(cfg=cfg, device=torch.device("cpu"), generator=torch.Generator())
    loss = (w.to(torch.bfloat16) * 3).sum()                 # a bf16 loss, as autocast may produce
    assert ctx.update(loss, {"l": loss}, [opt])
    assert w.grad.dtype == torch.float32
    torch.testing.assert_close(w.detach(), torch.full((2,), -2.0))


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_rank_shares_partition_the_global_batch(world_size: int) -> None:
    data = toy_split(30, 0)
    idx = torch.arange(30)
    whole = BatchStream(data, idx, 8, seed=3)
    shards = [BatchStream(data, idx, 8, seed=3, rank=r, world_size=world_size) for r in range(world_size)]
    for _ in range(6):                                        # crosses an epoch boundary (30 / 8)
        expected = next(whole).index
        got = torch.cat([next(s).index for s in shards])
        assert torch.equal(got, expected)
    assert all(s.state_dict()["pos"] == whole.state_dict()["pos"] for s in shards)


def test_world_size_must_divide_batch() -> None:
    with pytest.raises(WeaksegError, match="multiple of 3"):
        BatchStream(toy_split(9, 0), torch.arange(9), 4, seed=0, rank=0, world_size=3)


@pytest.mark.gpu
def test_on_device_stream_gathers_on_the_gpu_without_host_reads() -> None:
    data = toy_split(30, 0).to("cuda")
    stream = BatchStream(data, torch.arange(30), 8, seed=3, device=data.device)
    cpu = BatchStream(toy_split(30, 0), torch.arange(30), 8, seed=3)
    torch.cuda.set_sync_debug_mode("error")                   # any host-device sync raises
    try:
        batches = [next(stream) for _ in range(5)]
    finally:
        torch.cuda.set_sync_debug_mode(0)
    for b in batches:
        ref = next(cpu)
        assert b.image.is_cuda and b.case_ids == ()
        assert torch.equal(b.index.cpu(), ref.index) and torch.equal(b.image.cpu(), ref.image)
