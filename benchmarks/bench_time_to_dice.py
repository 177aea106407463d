"""GPU time for GenSeg to reach a validation Dice on mnist48_simple: fastest configuration vs eager fp32.

Each variant trains GenSeg at the published width (1.0) and batch (20 P + 20 A) from the same seed, and every
``--eval-every`` steps scores the ``--split`` split (default validation: the test split is never used to decide
anything; ``dice_per_image``, mean over labelled P images; evaluation time is not counted). It stops at
``--target``, after ``--max-steps`` or after ``--max-seconds`` of training. Training time is device-synchronised
wall time of the steps only (compilation included: it is part of what a user waits for).

    PYTHONPATH=src python benchmarks/bench_time_to_dice.py        # GPU only; on CPU it says so and exits
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, peak_memory_mib, record, sync  # noqa: E402


def run_variant(variant: str, args: argparse.Namespace, *, device: str = "cuda", width: float = 1.0,
                batch: int = 20, extra: list[str] | None = None) -> dict[str, Any]:
    """Train one variant until the target, ``args.max_steps`` or ``args.max_seconds`` of training; its curve."""
    from bench_training import setup

    from weakseg.evaluation import evaluate
    from weakseg.training.logging import flatten_scalars

    s = setup("genseg", "mnist48_simple", variant, width, batch, device,
              extra=[f"data.mnist.n_train={args.n_train}", f"data.mnist.n_{args.split}={args.n_eval}", *(extra or [])])
    cfg, device, data, method, step = s["cfg"], s["device"], s["data"], s["method"], s["step"]
    train_s, curve, reached = 0.0, [], None
    i = 0
    max_seconds = getattr(args, "max_seconds", None) or math.inf
    while i < args.max_steps and reached is None and train_s < max_seconds:
        sync(device)
        t = time.perf_counter()
        for _ in range(args.eval_every):
            step(i)
            i += 1
        sync(device)
        train_s += time.perf_counter() - t
        method.set_training(False)
        with torch.no_grad():
            flat = flatten_scalars(evaluate(method.segment, data, data.split(args.split), cfg, device))
        dice = flat.get(args.metric, flat.get(f"{args.metric}/mean"))
        curve.append({"step": i, "train_s": round(train_s, 2), args.metric: dice})
        print(f"{variant}: step {i} train {train_s:.1f} s {args.metric} {dice}", flush=True)
        if dice is not None and dice >= args.target:
            reached = {"step": i, "train_s": round(train_s, 2)}
    return {"variant": variant, "applied": s["applied"], "reached": reached, "curve": curve, **peak_memory_mib(device)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="*", default=["fp32", "best"])
    p.add_argument("--target", type=float, default=0.75)
    p.add_argument("--metric", default="dice_per_image")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--max-seconds", type=float, default=None, help="cap on each variant's training seconds")
    p.add_argument("--split", choices=["valid", "test"], default="valid", help="split scored every --eval-every")
    p.add_argument("--n-train", type=int, default=20000)
    p.add_argument("--n-eval", type=int, default=1000, help="samples (P + A pairs) of the scored split")
    p.add_argument("--out", type=Path, default=RESULTS / "bench_time_to_dice_gpu.json")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_time_to_dice: no CUDA device here; this benchmark measures GPU time only. Run it on a GPU "
              "machine: PYTHONPATH=src python benchmarks/bench_time_to_dice.py (nothing written).")
        return 0
    if args.one:
        print("RESULT " + json.dumps(run_variant(args.one, args)))
        return 0
    rows = []
    for variant in args.variants:                    # one subprocess per variant: clean memory and compile caches
        cmd = [sys.executable, __file__, "--one", variant, *sys.argv[1:]]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        rows.append(json.loads(line[0][7:]) if line else {"variant": variant, "error": proc.stderr[-1500:]})
    base = next((r for r in rows if r["variant"] == "fp32" and r.get("reached")), None)
    for r in rows:
        if base and r.get("reached"):
            r["speedup_vs_fp32"] = round(base["reached"]["train_s"] / r["reached"]["train_s"], 2)
    rec = record(f"GenSeg time to {args.split} {args.metric} >= {args.target} on mnist48_simple (width 1.0, batch "
                 "20+20)", target=args.target, metric=args.metric, split=args.split, eval_every=args.eval_every,
                 max_steps=args.max_steps, max_seconds=args.max_seconds, n_train=args.n_train, n_eval=args.n_eval,
                 results=rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
