"""Data-parallel training across processes launched by ``torchrun`` (one process per GPU, or CPU with gloo).

``torchrun --nproc_per_node=N -m weakseg train CONFIG --out DIR`` sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; ``init_distributed`` reads them, picks ``nccl`` on CUDA and ``gloo`` on CPU, and binds each
process to ``cuda:LOCAL_RANK``. Without those variables (or with ``WORLD_SIZE=1``) everything here is a
no-op, so the single-process path is unchanged.

How the ranks stay one model (see ``StepContext.update``): every rank starts from rank 0's weights, draws its
slice of the same global batch (``BatchStream(rank=, world_size=)``), and after each backward the gradients of
the optimisers being stepped are averaged across ranks in one flat all-reduce, exactly what DDP computes.

Why not ``torch.nn.parallel.DistributedDataParallel`` wrappers: DDP's reducer expects every parameter reachable
from a forward's outputs to receive a gradient in the next backward. GenSeg's segmentation head (and the
sep-dec segmenter) get no gradient in the many batches without a labelled image (1% labels), and DDP then
fails on the following step with "Expected to have finished reduction in the prior iteration" both with
``find_unused_parameters=False`` and ``=True`` (the head is in the output graph, just not in the loss). The
usual fix, adding ``0 * output.sum()``, gives those parameters zero gradients, which Adam with weight decay
then moves, unlike a single-process run where their gradient is ``None`` and Adam skips them. Averaging the
gradients in ``ctx.update`` keeps the single-process semantics (a parameter without a gradient on every rank
keeps ``grad=None``), needs no change in any method, and leaves ``method.models`` as plain modules for
``segment``, checkpoints, spectral-norm buffers and the EMA teacher. The cost: no overlap of communication with
the backward pass (one all-reduce after it), which is small next to our models' compute.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from weakseg.errors import WeaksegError

# Rank 0 alone evaluates the validation split and writes checkpoints while the other ranks wait in a
# collective; a long 3D sliding-window validation must not hit the default 10-minute NCCL timeout.
DEFAULT_TIMEOUT_MIN = 60

_HOST_GROUP: Any = None       # a gloo group for small host-side collectives when the main group is nccl


@dataclass(frozen=True)
class World:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False      # init_distributed created the process group (and teardown destroys it)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """Rank, local rank and world size from the ``torchrun`` environment (1 process when unset)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise WeaksegError("RANK / LOCAL_RANK / WORLD_SIZE must be integers (they are set by torchrun); "
                           "launch with torchrun --nproc_per_node=N -m weakseg train CONFIG") from None
    if world < 1 or not 0 <= rank < world:
        raise WeaksegError(f"RANK={rank} is not in [0, WORLD_SIZE={world}); launch with torchrun")
    return World(rank=rank, local_rank=local, world_size=world)


def init_distributed(device: torch.device, *, timeout_min: float = DEFAULT_TIMEOUT_MIN) -> tuple[World, torch.device]:
    """Join the process group described by the environment; returns the world and this rank's device.

    ``device`` is the resolved ``train.device``: on CUDA each rank takes ``cuda:LOCAL_RANK`` (``nccl``), on CPU
    every rank uses the CPU (``gloo``). A group that already exists (created by the caller) is reused.
    """
    env = world_from_env()
    if dist.is_available() and dist.is_initialized():
        env = World(rank=dist.get_rank(), local_rank=env.local_rank, world_size=dist.get_world_size())
    elif env.world_size == 1:
        return env, device
    elif not dist.is_available():
        raise WeaksegError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run one process")
    if env.world_size == 1:
        return env, device
    if device.type == "cuda":
        if device.index not in (None, env.local_rank):
            raise WeaksegError(f"train.device={device} under torchrun: each process uses cuda:LOCAL_RANK; "
                               "set train.device=auto or cuda")
        if env.local_rank >= torch.cuda.device_count():
            raise WeaksegError(f"LOCAL_RANK={env.local_rank} but only {torch.cuda.device_count()} CUDA devices are "
                               "visible; lower --nproc_per_node")
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, rank=env.rank, world_size=env.world_size,
                                timeout=datetime.timedelta(minutes=timeout_min), **kwargs)
        env = World(rank=env.rank, local_rank=env.local_rank, world_size=env.world_size, owns_group=True)
    global _HOST_GROUP
    _HOST_GROUP = dist.new_group(backend="gloo") if dist.get_backend() == "nccl" else None
    return env, device


def teardown(world: World) -> None:
    """Destroy the process group if ``init_distributed`` created it.

    On gloo the ranks first meet at a monitored barrier (30 s at most): a rank that destroys its group and
    exits while another still talks to it can make gloo abort that other process at exit ("terminate called
    without an active exception", exit -6; seen once in the two-process CPU test).
    """
    global _HOST_GROUP
    if world.owns_group and dist.is_initialized():
        if world.enabled and dist.get_backend() == "gloo":
            try:
                dist.monitored_barrier(timeout=datetime.timedelta(seconds=30))
            except RuntimeError:
                pass        # another rank failed and is gone: nothing left to wait for
        dist.destroy_process_group()
        _HOST_GROUP = None


def _host_group() -> Any:
    return _HOST_GROUP          # None = the default group (already gloo on CPU)


def barrier(world: World) -> None:
    if world.enabled:
        dist.barrier()


def broadcast_object(obj: Any, world: World, *, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (pickled; use for small control data and checkpoints)."""
    if not world.enabled:
        return obj
    box = [obj if world.rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any, world: World) -> list[Any]:
    if not world.enabled:
        return [obj]
    out: list[Any] = [None] * world.world_size
    dist.all_gather_object(out, obj)
    return out


def all_true(flag: torch.Tensor, world: World) -> torch.Tensor:
    """A 0-dim bool tensor that is True when ``flag`` is True on every rank (stays on its device: no host sync)."""
    if not world.enabled:
        return flag
    value = flag.to(torch.int32).reshape(1)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value[0].bool()


def broadcast_parameters(modules: Iterable[nn.Module], world: World) -> None:
    """Copy rank 0's parameters and buffers to every rank (as DDP does at construction)."""
    if not world.enabled:
        return
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def _unique_params(optimizers: Sequence[torch.optim.Optimizer]) -> list[nn.Parameter]:
    seen: set[int] = set()
    params = []
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
    return params


def average_gradients(optimizers: Sequence[torch.optim.Optimizer], world: World) -> None:
    """Average the gradients of the parameters of ``optimizers`` across ranks, in one all-reduce per dtype.

    A parameter whose gradient is ``None`` on every rank keeps ``None`` (Adam then skips it, as in one
    process); one that has a gradient on some ranks only gets the average with zeros for the others (what
    DDP does for unused parameters). Gradients are divided by the world size: the mean loss over the
    global batch, when each rank's loss is a mean over its equal share.
    """
    if not world.enabled:
        return
    by_dtype: dict[torch.dtype, list[nn.Parameter]] = {}
    for p in _unique_params(optimizers):
        if p.requires_grad:
            by_dtype.setdefault(p.dtype, []).append(p)
    for params in by_dtype.values():
        # Which gradients exist is host knowledge; uniting it over a CPU (gloo) group avoids a device sync.
        local = torch.tensor([p.grad is not None for p in params], dtype=torch.int32)                   # (P,)
        dist.all_reduce(local, group=_host_group())
        keep = [bool(k) for k in local.tolist()]
        params = [p for p, k in zip(params, keep, strict=True) if k]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if not params:
            continue
        flat = torch.cat([p.grad.reshape(-1) for p in params])                                        # (sum numel,)
        dist.all_reduce(flat)
        flat.div_(world.world_size)
        for p, chunk in zip(params, flat.split([p.numel() for p in params]), strict=True):
            p.grad.copy_(chunk.view_as(p))


def reduce_means(sums: dict[str, torch.Tensor], counts: dict[str, int], world: World) -> dict[str, float]:
    """Logged training means over every rank: sum of values / number of values, per key (union of keys)."""
    if not world.enabled:
        return {k: float(v) / counts[k] for k, v in sums.items()}
    keys = sorted(set().union(*all_gather_object(sorted(sums), world)))
    device = next(iter(sums.values())).device if sums else torch.device("cpu")
    if world.world_size > 1 and dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    packed = torch.zeros(2, len(keys), dtype=torch.float64, device=device)                              # (2, keys)
    for i, k in enumerate(keys):
        if k in sums:
            packed[0, i] = sums[k].to(device, torch.float64)
            packed[1, i] = counts[k]
    dist.all_reduce(packed)
    values = packed.cpu().tolist()
    return {k: values[0][i] / values[1][i] for i, k in enumerate(keys) if values[1][i] > 0}
