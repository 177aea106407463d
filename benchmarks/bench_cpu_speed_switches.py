"""CPU speed switches for GenSeg training: the quick and medium steps, one and two threads, side by side.

Variants (each its own method instance, built from the same seed so the first step sees the same batch):

- ``eager``: fp32 as ``fit`` runs by default (the baseline);
- ``channels_last``: ``train.channels_last=true`` (NHWC weights and images);
- ``compile``: ``train.compile=true`` (torch.compile, inductor on CPU); its first steps (the compilation) are
  capped at ``--compile-cap`` seconds and recorded; over the cap the variant is dropped;
- ``no_mkldnn``: ``torch.backends.mkldnn.enabled = False`` around its steps (oneDNN convolutions off);
- ``flush_denormal``: ``torch.set_flush_denormal(True)`` around its steps (denormal floats read as 0).

Timing blocks of ``--steps`` training steps are interleaved (eager, channels_last, ..., eager, ... per round,
for each thread count), so slow phases of this shared machine hit every variant alike; each figure is the
median over ``--rounds`` rounds, with the spread (min-max) and the paired ratio variant / eager per round. The
machine's load average is recorded per round. Agreement: the first step's loss terms of each variant
against eager (relative difference; a switch is only adoptable when it keeps them within float rounding).

    OMP_NUM_THREADS=2 PYTHONPATH=src python benchmarks/bench_cpu_speed_switches.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, record  # noqa: E402

VARIANTS: dict[str, list[str]] = {"eager": [], "channels_last": ["train.channels_last=true"],
                                  "compile": ["train.compile=true"], "no_mkldnn": [], "flush_denormal": []}
STEP_KINDS = ("quick", "medium")
AGREE_RTOL = 1e-4        # first-step losses within this relative difference: float rounding


def kind_config(kind: str, variant: str, seed: int):
    """The GenSeg config of one step kind: the quick table's (design preset) or the medium table's (*_v2)."""
    from weakseg.config import load_config
    from weakseg.reproduce.mnist import SCALES, grid

    preset = "mnist48_simple" if kind == "quick" else "mnist48_simple_v2"
    spec = grid(kind, presets=(preset,), methods=("genseg",), seeds=(seed,))[0]
    return load_config(spec.config, [*spec.overrides, f"train.seed={seed}", "train.device=cpu",
                                     *VARIANTS[variant]]), SCALES[kind]


@contextlib.contextmanager
def switches(variant: str) -> Iterator[None]:
    """Process-wide switches of a variant, on only while its steps run."""
    mkldnn, denormal = torch.backends.mkldnn.enabled, False
    try:
        if variant == "no_mkldnn":
            torch.backends.mkldnn.enabled = False
        if variant == "flush_denormal":
            denormal = torch.set_flush_denormal(True)
        yield
    finally:
        torch.backends.mkldnn.enabled = mkldnn
        if denormal:
            torch.set_flush_denormal(False)


class Runner:
    """One variant's method, streams and step function, built as ``fit`` builds them (no run folder)."""

    def __init__(self, kind: str, variant: str, data: Any, seed: int) -> None:
        from weakseg.methods.registry import build_method
        from weakseg.training.context import LoopContext
        from weakseg.training.loop import apply_speed_switches, build_streams
        from weakseg.training.seed import seed_everything

        self.cfg, _ = kind_config(kind, variant, seed)
        self.variant = variant
        seed_everything(self.cfg.train.seed)
        self.method = build_method(self.cfg, data, torch.device("cpu"))
        self.streams = build_streams(self.cfg, data, self.method)
        self.applied = apply_speed_switches(self.cfg, self.method, torch.device("cpu"))
        self.ctx = LoopContext(cfg=self.cfg, device=torch.device("cpu"),
                               generator=torch.Generator().manual_seed(self.cfg.train.seed + 7919))
        self.i = 0

    def step(self) -> dict[str, float]:
        from weakseg.training.loop import _batch_to

        self.ctx.step = self.i
        batches = {n: _batch_to(next(s), torch.device("cpu"), pin=False, channels_last=self.cfg.train.channels_last)
                   for n, s in self.streams.items()}
        self.method.set_training(True)
        logs: dict[str, torch.Tensor] = {}
        with switches(self.variant):
            for fn in self.method.steps:
                logs |= fn(self.method, batches, self.ctx)
        self.i += 1
        return {k: float(v) for k, v in logs.items()}


class CompileTimeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise CompileTimeout


def rel_diff(a: dict[str, float], b: dict[str, float]) -> float:
    keys = sorted(set(a) & set(b))
    return max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for k in keys) if keys else float("nan")


def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    from weakseg.data.registry import build_data

    cfg, _ = kind_config(kind, "eager", args.seed)
    t = time.perf_counter()
    data = build_data(cfg)
    data_s = time.perf_counter() - t
    # runners[n][variant]. Inductor's CPU kernels fix their OpenMP thread count when they are generated, so the
    # compiled variant is built and compiled once per thread count; the others serve every thread count.
    runners: dict[int, dict[str, Runner]] = {n: {} for n in args.threads}
    first: dict[str, dict[str, float]] = {}
    warm: dict[str, float] = {}
    dropped: dict[str, str] = {}
    for variant in args.variants:
        shared = None
        for n in args.threads:
            if shared is not None:
                runners[n][variant] = shared
                continue
            torch.set_num_threads(n)
            r = Runner(kind, variant, data, args.seed)
            label = f"{variant}@{n}t" if variant == "compile" else variant
            t = time.perf_counter()
            try:
                if variant == "compile":
                    signal.signal(signal.SIGALRM, _alarm)
                    signal.alarm(args.compile_cap)
                losses = r.step()                               # the same first batch for every variant
                first.setdefault(variant, losses)
                for _ in range(args.warmup - 1):
                    r.step()
            except CompileTimeout:
                dropped[label] = f"compilation took over the {args.compile_cap} s cap"
                print(f"{kind} {label}: {dropped[label]}; dropped", flush=True)
                continue
            finally:
                signal.alarm(0)
            warm[label] = round(time.perf_counter() - t, 2)
            runners[n][variant] = r
            if variant != "compile":
                shared = r
            print(f"{kind} {label}: warm-up {warm[label]} s ({args.warmup} steps; applied {r.applied})", flush=True)
    times: dict[str, dict[str, list[float]]] = {str(n): {v: [] for v in runners[n]} for n in args.threads}
    loads = []
    for rnd in range(args.rounds):
        loads.append(round(os.getloadavg()[0], 2))
        for n in args.threads:
            torch.set_num_threads(n)
            for variant, r in runners[n].items():
                t = time.perf_counter()
                for _ in range(args.steps):
                    r.step()
                times[str(n)][variant].append((time.perf_counter() - t) / args.steps)
        print(f"{kind} round {rnd + 1}/{args.rounds}: " + ", ".join(
            f"{n}t {v} {times[str(n)][v][-1]:.3f}" for n in args.threads for v in runners[n]), flush=True)
    out: dict[str, Any] = {"kind": kind, "config_overrides": grid_overrides(kind, args.seed),
                           "data_build_s": round(data_s, 2), "warmup_s": warm, "dropped": dropped,
                           "load_average_1m_per_round": loads, "threads": {}}
    for n in args.threads:
        rows = {}
        base = times[str(n)]["eager"]
        for variant, ts in times[str(n)].items():
            ratios = [t / b for t, b in zip(ts, base, strict=True)]
            rows[variant] = {"step_s_median": round(statistics.median(ts), 4),
                             "step_s_min_max": [round(min(ts), 4), round(max(ts), 4)],
                             "ratio_vs_eager_median": round(statistics.median(ratios), 3),
                             "ratio_vs_eager_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
                             "first_step_losses": first[variant],
                             "first_step_max_rel_diff_vs_eager": rel_diff(first[variant], first["eager"]),
                             "losses_agree": rel_diff(first[variant], first["eager"]) <= AGREE_RTOL,
                             "step_s_all": [round(t, 4) for t in ts]}
        out["threads"][str(n)] = rows
    return out


def grid_overrides(kind: str, seed: int) -> list[str]:
    from weakseg.reproduce.mnist import grid

    preset = "mnist48_simple" if kind == "quick" else "mnist48_simple_v2"
    return list(grid(kind, presets=(preset,), methods=("genseg",), seeds=(seed,))[0].overrides)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", nargs="*", default=list(STEP_KINDS), choices=STEP_KINDS)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    p.add_argument("--steps", type=int, default=4, help="training steps per timing block")
    p.add_argument("--rounds", type=int, default=5, help="interleaved repeats")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant (compilation included)")
    p.add_argument("--compile-cap", type=int, default=900, help="seconds allowed for torch.compile's warm-up")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS / "bench_cpu_speed_switches.json")
    args = p.parse_args(argv)
    if "eager" not in args.variants:
        args.variants.insert(0, "eager")
    results = [measure(kind, args) for kind in args.kinds]
    best = {}
    for r in results:
        for n, rows in r["threads"].items():
            ok = {v: row for v, row in rows.items() if row["losses_agree"]}
            win = min(ok, key=lambda v: ok[v]["ratio_vs_eager_median"])
            best[f"{r['kind']}/{n} thread(s)"] = {"variant": win, "ratio_vs_eager_median": ok[win]["ratio_vs_eager_median"]}
    rec = record("GenSeg training step on CPU: speed switches vs eager fp32, interleaved repeats",
                 steps_per_block=args.steps, rounds=args.rounds, warmup_steps=args.warmup,
                 compile_cap_s=args.compile_cap, agree_rtol=AGREE_RTOL, results=results,
                 best_agreeing_variant=best)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rec, indent=1) + "\n")
    for k, v in best.items():
        print(f"{k}: fastest agreeing variant {v['variant']} (median ratio vs eager {v['ratio_vs_eager_median']})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
