"""Cluttered-MNIST generation speed: vectorised generator vs the per-sample reference, side by side.

For each preset both generators make the same number of samples (one sample = a P image with its mask
plus an A image) from the embedded training digits, best of ``--repeats`` runs each, in this one process.
Writes ``results/bench_mnist_generation.json`` with the command, figures, seed, commit, machine and date.

    PYTHONPATH=src python benchmarks/bench_mnist_generation.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from _common import git_commit  # benchmarks/ is on sys.path when a script runs
from weakseg.data.mnist import PRESETS, generate_cluttered, generate_cluttered_reference, load_digits

ROOT = Path(__file__).resolve().parents[1]


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n48", type=int, default=2000, help="samples per run for the 48-px presets")
    p.add_argument("--n128", type=int, default=500, help="samples per run for the 128-px preset")
    p.add_argument("--repeats", type=int, default=3, help="runs per generator; the best is kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench_mnist_generation.json")
    args = p.parse_args(argv)

    load_before = os.getloadavg()[0]
    digits = load_digits()                                                 # cached; not part of the timing
    fold = digits.train
    rows = []
    for name, spec in PRESETS.items():
        n = args.n48 if spec.canvas == 48 else args.n128
        generate_cluttered(fold, spec, min(n, 64), seed=args.seed)          # warm-up (allocator, imports)
        t_vec = best_seconds(lambda: generate_cluttered(fold, spec, n, seed=args.seed), args.repeats)  # noqa: B023
        t_ref = best_seconds(lambda: generate_cluttered_reference(fold, spec, n, seed=args.seed),      # noqa: B023
                             args.repeats)
        rows.append({"preset": name, "spec": asdict(spec), "n_samples": n,
                     "vectorised_s": round(t_vec, 4), "reference_s": round(t_ref, 4),
                     "vectorised_samples_per_s": round(n / t_vec, 1), "reference_samples_per_s": round(n / t_ref, 1),
                     "speedup": round(t_ref / t_vec, 2)})

    print(f"{'preset':<16}{'n':>6}{'vectorised/s':>14}{'reference/s':>13}{'speed-up':>10}")
    for r in rows:
        print(f"{r['preset']:<16}{r['n_samples']:>6}{r['vectorised_samples_per_s']:>14.0f}"
              f"{r['reference_samples_per_s']:>13.0f}{r['speedup']:>9.1f}x")

    record = {
        "benchmark": "cluttered-MNIST generation, samples/s (1 sample = P image + mask + A image)",
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "digits": digits.name, "fold": "train", "seed": args.seed, "repeats": args.repeats, "timing": "best of repeats",
        "target_speedup": 10.0, "results": rows,
        "git_commit": git_commit(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(),
                    # other jobs share this machine's cores; the 1-minute load says how busy it was
                    "load_average_1m": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)}},
        "versions": {"numpy": np.__version__, "torch": torch.__version__},
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
