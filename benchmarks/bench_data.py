"""Data pipeline throughput vs training consumption: does the GPU (or CPU) wait for data?

Measured, per preset, in images/s (one global batch of 20 per stream, as in training):
- ``generate``: cluttered-MNIST generation of a split (numpy, once per run; not in the step);
- ``stream_host``: ``BatchStream`` batches gathered on the CPU from an in-memory set (what a CPU run and a
  GPU run with ``data.on_device=never`` do each step), plus, on GPU, the pinned asynchronous copy;
- ``stream_device`` (GPU only): the same stream with the set moved to the GPU once (``data.on_device``);
- ``memmap_host``: BraTS-shaped rows (4 x 240 x 120 float32) read from a ``.npy`` memory map in file order,
  as ``BratsSliceSet.batch`` does (page cache warm after the first pass).
The training consumption is read from ``results/bench_training_<gpu|cpu_quick>.json`` (GenSeg, fastest
variant) when it exists; ``ratio`` = data images/s / training images/s (target >= 5).

    PYTHONPATH=src python benchmarks/bench_data.py            # writes results/bench_data_<device>.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, record, sync  # noqa: E402

from weakseg.data.datasets import TensorSampleSet  # noqa: E402
from weakseg.data.mnist import PRESETS, generate_cluttered, load_digits  # noqa: E402
from weakseg.data.samplers import BatchStream  # noqa: E402
from weakseg.training.loop import _batch_to  # noqa: E402

BATCH = 20


def rate(fn, n: int, device: torch.device) -> float:
    """Calls per second of ``fn`` over ``n`` calls after 3 warm-up calls, device-synchronised."""
    for _ in range(3):
        fn()
    sync(device)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return n / (time.perf_counter() - t)


def mnist_set(preset: str, n: int) -> tuple[TensorSampleSet, float]:
    digits = load_digits()
    t = time.perf_counter()
    gen = generate_cluttered(digits.train, PRESETS[preset], n, seed=0)
    gen_s = time.perf_counter() - t
    images = torch.from_numpy(gen.images)                                  # (2n, 1, S, S): P then A
    m = len(images)
    status = torch.zeros(m, 1, dtype=torch.int8)
    masks = torch.zeros(m, 1, *images.shape[2:], dtype=torch.uint8)
    return TensorSampleSet(images, status, masks, torch.zeros(m, dtype=torch.bool), class_names=("digit",)), n / gen_s


def training_rates() -> dict[str, dict[str, float]]:
    """GenSeg images/s per preset from the training benchmark: fastest variant, per device kind."""
    out: dict[str, dict[str, float]] = {}
    for kind in ("gpu", "cpu_quick"):
        path = RESULTS / f"bench_training_{kind}.json"
        if path.is_file():
            for r in json.loads(path.read_text())["results"]:
                if r["method"] == "genseg":
                    best = out.setdefault(kind, {})
                    best[r["preset"]] = max(best.get(r["preset"], 0.0), r["images_per_s"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n48", type=int, default=4000, help="samples generated for the 48-px preset")
    p.add_argument("--n128", type=int, default=1000, help="samples generated for mnist128")
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    rows = []
    for preset, n in (("mnist48_simple", args.n48), ("mnist128", args.n128)):
        data, gen_rate = mnist_set(preset, n)
        row = {"preset": preset, "generate_samples_per_s": round(gen_rate, 1), "generated": n}
        host = BatchStream(data, torch.arange(len(data)), BATCH, seed=0)
        row["stream_host_images_per_s"] = round(BATCH * rate(lambda: next(host), args.batches, torch.device("cpu")), 1)
        if gpu:
            row["stream_host_pinned_copy_images_per_s"] = round(BATCH * rate(
                lambda: _batch_to(next(host), device, pin=True, channels_last=False), args.batches, device), 1)
            on = data.to(device)
            dev = BatchStream(on, torch.arange(len(on)), BATCH, seed=0, device=device)
            row["stream_device_images_per_s"] = round(BATCH * rate(lambda: next(dev), args.batches, device), 1)
        rows.append(row)
        print(row, flush=True)
    with tempfile.TemporaryDirectory() as tmp:                              # BraTS-shaped rows from a memory map
        n = 512
        path = Path(tmp) / "images.npy"
        np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 4, 240, 120))[:] = 0.5
        mm = np.load(path, mmap_mode="r")
        rng = np.random.default_rng(0)

        def read() -> torch.Tensor:
            idx = np.sort(rng.choice(n, BATCH, replace=False))
            return torch.from_numpy(np.asarray(mm[idx]))

        row = {"preset": "brats_memmap", "rows": n, "memmap_host_images_per_s": round(BATCH * rate(read, 50, torch.device("cpu")), 1)}
        if gpu:
            row["memmap_pinned_copy_images_per_s"] = round(BATCH * rate(
                lambda: read().pin_memory().to(device, non_blocking=True), 50, device), 1)
        rows.append(row)
        print(row, flush=True)
    consumption = training_rates()
    kind = "gpu" if gpu else "cpu_quick"
    for r in rows:
        train = consumption.get(kind, {}).get(r["preset"] if r["preset"] != "brats_memmap" else "brats")
        if train:
            data_rate = r.get("stream_device_images_per_s") or r.get("stream_host_images_per_s") or \
                r.get("memmap_pinned_copy_images_per_s") or r.get("memmap_host_images_per_s")
            r["genseg_training_images_per_s"] = train
            r["ratio_data_over_training"] = round(data_rate / train, 1)
    out = args.out or RESULTS / f"bench_data_{'gpu' if gpu else 'cpu'}.json"
    rec = record("data pipeline throughput (images/s, global batch 20 per stream) vs training consumption",
                 device=str(device), batch=BATCH, results=rows, training_consumption=consumption.get(kind),
                 note="ratio >= 5 means the training never waits for data (issue 7 target)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
