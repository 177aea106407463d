"""Cluttered-MNIST generation speed: the vectorised generator vs what a user of the reference runs.

Generators, per preset, the same number of samples each (one sample = a P image with its mask + an A image):

- ``vectorised``: ``generate_cluttered`` (stacked arrays, ready for training);
- ``reference``: ``cluttered_sample_reference`` called once per sample into a list of tuples, as the reference's
  ``setup_mnist_data._generate_cluttered`` does (same ``RandomState`` calls in the same order, float32 data,
  pixel-identical to the reference's output);
- ``peer`` (with ``--peer DIR``, a checkout of github.com/veugene/genseg): the reference project's own
  ``_generate_cluttered`` from ``DIR/utils/data/cluttered_mnist.py``, given our digit fold (its MNIST download and
  split in ``__init__`` are bypassed). Before timing, the script checks that ``reference`` reproduces the peer's
  pixels and masks exactly from the same seed.

Timing is interleaved (A, B, A, B, ... within one process, after one warm-up call each), so a change of load on
a shared machine hits every generator alike; each repeat gives one ratio per pair, and the median ratio with its
spread (min, quartiles, max) is reported, with the 1/5/15-minute load averages before and after.

    PYTHONPATH=src python benchmarks/bench_mnist_generation.py                   # results/bench_mnist_generation.json
    PYTHONPATH=src python benchmarks/bench_mnist_generation.py --peer ../genseg  # + the reference project's code
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, record  # noqa: E402

from weakseg.data.mnist import (  # noqa: E402
    PRESETS,
    ClutterSpec,
    cluttered_sample_reference,
    generate_cluttered,
    load_digits,
)
from weakseg.errors import WeaksegError  # noqa: E402

PEER_FILE = Path("utils") / "data" / "cluttered_mnist.py"
PEER_URL = "https://github.com/veugene/genseg"


def reference_samples(images: np.ndarray, spec: ClutterSpec, n: int, seed: int) -> list[Any]:
    """The reference's ``_generate_cluttered``: n per-sample calls appended to a list (every sample labelled)."""
    rng = np.random.RandomState(seed)
    return [cluttered_sample_reference(images, spec, rng) for _ in range(n)]


def load_peer(folder: Path) -> tuple[type, str]:
    """The reference project's ``setup_mnist_data`` class from a checkout, and that checkout's commit."""
    path = folder / PEER_FILE
    if not path.is_file():
        raise WeaksegError(f"--peer {folder}: no {PEER_FILE} there; pass a checkout of {PEER_URL} "
                           f"(git clone {PEER_URL})")
    spec = importlib.util.spec_from_file_location("genseg_peer_cluttered_mnist", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    proc = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    return module.setup_mnist_data, (proc.stdout.strip() if proc.returncode == 0 else "unknown")


def peer_generator(cls: type, images: np.ndarray, labels: np.ndarray, spec: ClutterSpec,
                   seed: int) -> Any:
    """A ``setup_mnist_data`` holding our fold as its training fold; ``__init__`` (download, split) is skipped."""
    peer = object.__new__(cls)
    peer.size_output, peer.n_clutter = spec.canvas, spec.n_clutter
    peer.size_clutter, peer.background_noise = spec.size_clutter, spec.noise_sigma
    peer._x, peer._y = {"train": images}, {"train": labels}
    peer.rng = np.random.RandomState(seed)
    return peer


def peer_identical(cls: type, images: np.ndarray, labels: np.ndarray, spec: ClutterSpec, n: int,
                   seed: int) -> bool:
    """Does ``reference`` give the peer's exact A image, P image and mask, sample by sample, from one seed?"""
    theirs = peer_generator(cls, images, labels, spec, seed)._generate_cluttered(n, "train")
    ours = reference_samples(images, spec, n, seed)
    return all(np.array_equal(t[0], o.a_image) and np.array_equal(t[1], o.p_image) and np.array_equal(t[2], o.mask)
               and t[0].dtype == o.a_image.dtype and t[3] == labels[o.source]
               for t, o in zip(theirs, ours, strict=True))


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, called in turn (A, B, A, B, ...) after one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def spread(values: list[float], digits: int = 2) -> dict[str, float]:
    q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
    return dict(zip(("min", "q1", "median", "q3", "max"), (round(float(v), digits) for v in q), strict=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n48", type=int, default=2000, help="samples per call for the 48-px presets")
    p.add_argument("--n128", type=int, default=500, help="samples per call for the 128-px preset")
    p.add_argument("--repeats", type=int, default=9, help="interleaved calls per generator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--presets", nargs="*", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--peer", type=Path, default=None, help=f"a checkout of {PEER_URL}: time its own generator too")
    p.add_argument("--out", type=Path, default=RESULTS / "bench_mnist_generation.json")
    args = p.parse_args(argv)

    load_before = [round(x, 2) for x in os.getloadavg()]
    digits = load_digits()                                                 # cached; not part of the timing
    images, labels = np.asarray(digits.train.images), digits.train.labels  # (N, 28, 28) float32, (N,)
    peer_cls, peer_commit = load_peer(args.peer) if args.peer else (None, None)
    rows = []
    for name in args.presets:
        spec = PRESETS[name]
        n = args.n48 if spec.canvas == 48 else args.n128
        fns: dict[str, Callable[[], object]] = {
            "vectorised": lambda: generate_cluttered(digits.train, spec, n, seed=args.seed),            # noqa: B023
            "reference": lambda: reference_samples(images, spec, n, args.seed),                         # noqa: B023
        }
        identical = None
        if peer_cls is not None:
            identical = peer_identical(peer_cls, images, labels, spec, 200, args.seed)
            if not identical:
                print(f"{name}: the reference does NOT reproduce the peer's pixels", flush=True)
            fns["peer"] = lambda: peer_generator(peer_cls, images, labels, spec,                        # noqa: B023
                                                 args.seed)._generate_cluttered(n, "train")             # noqa: B023
        times = interleaved(fns, args.repeats)
        row: dict[str, Any] = {"preset": name, "spec": asdict(spec), "n_samples": n}
        for gen, ts in times.items():
            row[f"{gen}_s"] = [round(t, 4) for t in ts]
            row[f"{gen}_samples_per_s"] = round(n / float(np.median(ts)), 1)
        ratios = [r / v for r, v in zip(times["reference"], times["vectorised"], strict=True)]
        row["speedup_vs_reference"] = spread(ratios)
        if "peer" in times:
            row["speedup_vs_peer"] = spread([r / v for r, v in zip(times["peer"], times["vectorised"], strict=True)])
            row["reference_over_peer_speed"] = spread([pe / r for pe, r in zip(times["peer"], times["reference"],
                                                                              strict=True)], digits=3)
            row["reference_pixel_identical_to_peer"] = identical
        rows.append(row)
        print(f"{name:<16}{n:>6}" + "".join(f"{g:>12}/s {row[f'{g}_samples_per_s']:>8.0f}" for g in times)
              + f"   vectorised/reference {row['speedup_vs_reference']['median']:.1f}x "
                f"({row['speedup_vs_reference']['min']:.1f}-{row['speedup_vs_reference']['max']:.1f})", flush=True)

    load_after = [round(x, 2) for x in os.getloadavg()]
    rec = record(
        "cluttered-MNIST generation, samples/s (1 sample = P image + mask + A image)",
        digits=digits.name, fold="train", seed=args.seed, repeats=args.repeats,
        timing=("interleaved calls (A, B, A, B, ...) in one process after one warm-up call each; samples/s from the "
                "median call; speed-ups = per-repeat time ratios, median and spread (min, q1, median, q3, max)"),
        baseline=("reference = the reference project's per-sample algorithm in its own RandomState call order and "
                  "dtypes, called once per sample into a list as its _generate_cluttered does"
                  + (f"; peer = that project's own code ({PEER_URL} at {peer_commit}, {PEER_FILE}), "
                     "checked pixel-identical to reference on 200 samples per preset" if peer_cls else "")),
        peer={"url": PEER_URL, "commit": peer_commit, "file": str(PEER_FILE)} if peer_cls else None,
        load_average_1_5_15={"before": load_before, "after": load_after},
        results=rows, versions_numpy=np.__version__,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(r.get("reference_pixel_identical_to_peer", True) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
