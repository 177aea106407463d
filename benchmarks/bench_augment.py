"""Cost of the BraTS training augmentation (``weakseg.data.augment``) per training step.

BraTS-shaped batches (4 x 240 x 120 hemisphere slices, random brain-like content inside an ellipse, a
labelled square) go through ``SliceAugment`` with the brats preset's settings (genseg.md §10.2); the
augmentation alone is timed per stream batch, and a training step of each method is timed with and without
it, interleaved (a round = one step without, one step with), so load from other jobs hits both alike.
Figures: median milliseconds over the timed rounds; ``overhead`` = with / without - 1.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_augment.py                   # CPU, ~5 minutes
    PYTHONPATH=src python benchmarks/bench_augment.py --device cuda --width 1.0           # GPU, published width

Writes ``results/bench_augment_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, record, sync  # noqa: E402


def brain_batch(n: int, device: torch.device, seed: int = 0) -> Any:
    """``n`` slices of 4 x 240 x 120: values in [-0.9, 0.9] inside an ellipse, 0 outside, a 40 x 40 mask."""
    from weakseg.data.batch import Batch

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(240), torch.arange(120), indexing="ij")
    brain = ((yy - 120) / 100) ** 2 + ((xx - 60) / 55) ** 2 <= 1
    image = (torch.rand(n, 4, 240, 120, generator=g) * 1.8 - 0.9) * brain
    mask = torch.zeros(n, 1, 240, 120, dtype=torch.uint8)
    mask[:, :, 100:140, 40:80] = 1
    return Batch(image=image, status=torch.zeros(n, 1, dtype=torch.int8), mask=mask,
                 has_mask=torch.ones(n, dtype=torch.bool), index=torch.arange(n)).to(device)


def time_augment(aug: Any, batch: Any, device: torch.device, repeats: int) -> list[float]:
    out = []
    for r in range(repeats + 1):
        sync(device)
        t = time.perf_counter()
        aug(batch, step=r)
        sync(device)
        if r:                                                   # the first call imports and warms up
            out.append(time.perf_counter() - t)
    return out


def time_steps(method_name: str, width: float, batch: int, device_name: str, rounds: int) -> dict[str, Any]:
    """Interleaved step times of one method without / with augmentation of every stream's batch."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_training import setup

    from weakseg.data.augment import SliceAugment

    s = setup(method_name, "brats", "fp32", width, batch, device_name)
    device, method, ctx, cfg = s["device"], s["method"], s["ctx"], s["cfg"]
    from weakseg.training.loop import _batch_to, build_streams

    streams = build_streams(cfg, s["data"], method)
    aug = SliceAugment()

    def step(i: int, augment: bool) -> float:
        ctx.step = i
        batches = {n: _batch_to(next(st), device, pin=False, channels_last=False) for n, st in streams.items()}
        sync(device)
        t = time.perf_counter()
        if augment:
            batches = {n: aug(b, step=i, stream=k) for k, (n, b) in enumerate(batches.items())}
        method.set_training(True)
        for fn in method.steps:
            fn(method, batches, ctx)
        sync(device)
        return time.perf_counter() - t

    step(0, False)
    step(1, True)                                                 # warm-up both paths
    plain, augmented = [], []
    for r in range(rounds):
        plain.append(step(2 + 2 * r, False))
        augmented.append(step(3 + 2 * r, True))
    a, b = statistics.median(plain), statistics.median(augmented)
    return {"method": method_name, "width": width, "batch_per_stream": batch, "streams": len(streams),
            "step_ms": round(1000 * a, 1), "step_with_augment_ms": round(1000 * b, 1),
            "overhead": round(b / a - 1, 3), "rounds": rounds}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=20, help="images per stream (published: 20 P + 20 A)")
    p.add_argument("--width", type=float, default=0.125, help="model width for the step timings")
    p.add_argument("--methods", nargs="+", default=["seg_only", "genseg"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)

    from weakseg.data.augment import SliceAugment

    device = torch.device(args.device)
    aug = SliceAugment()
    times = time_augment(aug, brain_batch(args.batch, device), device, args.repeats)
    alone = {"images": args.batch, "shape": [4, 240, 120], "settings": aug.describe(),
             "ms_per_batch": round(1000 * statistics.median(times), 1),
             "ms_per_image": round(1000 * statistics.median(times) / args.batch, 2),
             "all_ms": [round(1000 * t, 1) for t in times]}
    print(f"augmentation alone: {alone['ms_per_batch']} ms per {args.batch} images ({alone['ms_per_image']} ms per "
          f"image) on {device}, {torch.get_num_threads()} thread(s)")
    steps = []
    for m in args.methods:
        row = time_steps(m, args.width, args.batch, args.device, args.rounds)
        steps.append(row)
        print(f"{m} (width {row['width']}, {row['streams']} x {row['batch_per_stream']} images): step "
              f"{row['step_ms']} ms, with augmentation {row['step_with_augment_ms']} ms "
              f"({100 * row['overhead']:+.0f}%)")
    out = record("bench_augment", device=str(device), augment_alone=alone, steps=steps,
                 seed=0, config="configs/presets/brats.yaml (data.brats.augment*)")
    path = RESULTS / f"bench_augment_{device.type}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
