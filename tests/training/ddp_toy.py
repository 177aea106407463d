"""A deterministic toy method for the DDP tests, and the worker that ``test_distributed`` launches.

The method has no randomness (no dropout, no noise) and a loss that is a mean over the batch, so one
process with batch B and N processes with B / N each must follow the same trajectory up to float rounding.

Worker: ``python -m tests.training.ddp_toy JOBS_JSON`` under torchrun's environment variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) runs each job ``{"out", "steps", "resume", "dump"}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

import tests.toy  # noqa: F401  (registers the toy dataset)
from weakseg.config import load_config
from weakseg.config.schema import Config
from weakseg.data.batch import Batch
from weakseg.data.registry import DataBundle
from weakseg.methods.registry import Method, StepContext, adam, register_method

DUMP_DIR: Path | None = None      # where the last step writes this rank's weights (rank<r>.pt)


def ddp_config(steps: int, batch_size: int = 4):
    return load_config(None, ["data.name=toy", "method=ddp_toy", f"train.batch_size={batch_size}",
                              f"train.steps={steps}", "train.log_every=1", "train.eval_every=4",
                              "train.checkpoint_every=4", "train.lr=0.05"])


def ddp_toy_step(method: Method, batches: dict[str, Batch], ctx: StepContext) -> dict[str, Tensor]:
    b = batches["labelled"]
    logits = method.models["net"](b.image)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, b.mask.float())   # mean over the batch
    ctx.update(loss, {"loss/bce": loss}, [method.optimizers["net"]])
    if DUMP_DIR is not None and ctx.step + 1 == ctx.cfg.train.steps:
        torch.save(method.models["net"].state_dict(), DUMP_DIR / f"rank{ctx.world.rank}.pt")
    return {"loss/bce": loss.detach()}


@register_method("ddp_toy")
def build_ddp_toy(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1)).to(device)
    return Method("ddp_toy", nn.ModuleDict({"net": net}), {"net": adam(net.parameters(), cfg)}, (ddp_toy_step,),
                  {"labelled": "labelled"}, net)


def grads_job(world, dump: Path) -> None:
    """Gradient averaging rules: a gradient on rank 0 only is averaged with zeros; none anywhere stays None."""
    from weakseg.training.distributed import average_gradients

    a, b, c = (nn.Parameter(torch.zeros(2)) for _ in range(3))
    a.grad = torch.full((2,), 2.0 * (world.rank + 1))                    # 2 on rank 0, 4 on rank 1
    b.grad = torch.full((2,), 6.0) if world.rank == 0 else None          # rank 0 only
    average_gradients([torch.optim.SGD([a, b], lr=1.0), torch.optim.SGD([c], lr=1.0)], world)
    torch.save({"a": a.grad, "b": b.grad, "c": c.grad}, dump / f"grads{world.rank}.pt")


def main(jobs_json: str) -> None:
    global DUMP_DIR
    from weakseg.training import distributed
    from weakseg.training.loop import fit

    world, _ = distributed.init_distributed(torch.device("cpu"))   # the env path fit() uses, kept for all jobs
    try:
        for job in json.loads(jobs_json):
            if job.get("kind") == "grads":
                Path(job["dump"]).mkdir(parents=True, exist_ok=True)
                grads_job(world, Path(job["dump"]))
                continue
            DUMP_DIR = Path(job["dump"]) if job.get("dump") else None
            if DUMP_DIR is not None:
                DUMP_DIR.mkdir(parents=True, exist_ok=True)
            fit(ddp_config(job["steps"]), job["out"], resume=job.get("resume", False), progress=False)
    finally:
        distributed.teardown(world)


if __name__ == "__main__":
    main(sys.argv[1])
