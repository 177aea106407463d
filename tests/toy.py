"""A toy dataset and method registered for engine tests (independent of the real models)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from weakseg.config.schema import Config
from weakseg.data.batch import Batch
from weakseg.data.datasets import TensorSampleSet
from weakseg.data.registry import DataBundle, register_dataset
from weakseg.data.status import ABSENT, MASK, PRESENT
from weakseg.methods.registry import Method, StepContext, adam, register_method


POISON_FROM_STEP: int | None = None


def toy_split(n: int, seed: int) -> TensorSampleSet:
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 1, 16, 16, dtype=torch.uint8)
    status = torch.full((n, 1), MASK, dtype=torch.int8)
    for i in range(n):
        if i % 3 == 2:                              # every third image is healthy
            status[i, 0] = ABSENT
            continue
        r, c = torch.randint(0, 10, (2,), generator=g).tolist()
        masks[i, 0, r:r + 6, c:c + 6] = 1
    status[1::5, 0] = PRESENT                       # some P images without mask
    has_mask = status[:, 0] == MASK
    masks[~has_mask] = 0
    images = masks.float() * 0.8 + 0.05 * torch.randn(n, 1, 16, 16, generator=g)
    return TensorSampleSet(images, status, masks, has_mask, class_names=("blob",))


def toy_evaluate(segment, data, cfg: Config, device: torch.device) -> dict[str, float]:
    batch = data.batch(torch.arange(len(data))).to(device)
    probs = torch.sigmoid(segment(batch.image))
    keep = batch.has_mask
    err = ((probs - batch.mask.float()) ** 2)[keep].mean()
    return {"dice_soft_global": float(1 - err), "mse": float(err)}


@register_dataset("toy")
def build_toy(cfg: Config) -> DataBundle:
    splits = {"train": toy_split(30, 0), "valid": toy_split(9, 1), "test": toy_split(9, 2)}
    return DataBundle(splits=splits, class_names=("blob",), in_channels=1, scoring=toy_evaluate,
                      value_range=(-1.0, 2.0))


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Dropout(0.2), nn.ReLU(), nn.Conv2d(4, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def toy_step(method: Method, batches: dict[str, Batch], ctx: StepContext) -> dict[str, Tensor]:
    b = batches["labelled"]
    noise = torch.randn(b.image.shape, generator=ctx.generator) * 0.01   # uses the run's noise generator
    logits = method.models["net"](b.image + noise)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, b.mask.float())
    if POISON_FROM_STEP is not None and ctx.step >= POISON_FROM_STEP:
        loss = loss * float("nan")                                      # fault injection for tests
    ctx.update(loss, {"loss/bce": loss}, [method.optimizers["net"]])
    return {"loss/bce": loss.detach()}


@register_method("toy")
def build_toy_method(cfg: Config, data: DataBundle, device: torch.device) -> Method:
    net = ToyNet().to(device)
    return Method("toy", nn.ModuleDict({"net": net}), {"net": adam(net.parameters(), cfg)}, (toy_step,),
                  {"labelled": "labelled"}, net)
