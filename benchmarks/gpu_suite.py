"""Every pending GPU figure in one prepared command, most valuable first, inside a wall-clock budget.

One call of the device machine (a fresh H100, one command of at most 10 minutes) runs, in this order:

  genseg48          GenSeg mnist48_simple, eager fp32 vs best (bf16 + compile + channels_last): images/s, peak
                    CUDA memory, first-loss agreement, host syncs per step (issue 7's 3x target)
  gpu_tests         the ``gpu``-marked tests (pytest -m gpu): on-device batches and sync-free method steps
  throughput_fp32   eager fp32 images/s and peak memory of every method x {MNIST 48, MNIST 128, BraTS 4x240x120}
  time_to_dice      GenSeg to validation dice_per_image >= 0.75 on mnist48_simple, fp32 vs best, capped
  data_ratio        on-device / pinned data pipeline images/s vs GenSeg's training consumption
  throughput_best   the best fast path for the other (method, preset) pairs, GenSeg first, as time allows
  variants_alone    bf16, channels_last and compile alone (GenSeg 48 first), as time allows
  nccl              a 2-process nccl training smoke run (skipped with fewer than 2 GPUs)
  full_run          the rest of the call: the paper-scale GenSeg run on mnist48_simple, time-boxed, resumable
                    across calls through the small files of ``gpu_carry.py``

Every part but ``env`` runs in its own process with its own time budget (a crash or hang costs that part only);
the suite's JSON is rewritten after every part, so a run cut off still returns what it had. At the end it prints
one summary table and exits 1 if any part failed (the others' results are kept).

    PYTHONPATH=src python benchmarks/gpu_suite.py --plan       # the plan: parts, order, seconds, budget (no GPU)
    PYTHONPATH=src python benchmarks/gpu_suite.py --dry-run    # CPU, tiny sizes, every code path, seconds
    PYTHONPATH=src python benchmarks/gpu_suite.py --out $OUT --full-run-from runs/gpu_full_run \\
        --full-run-out $OUT/full_run                            # on the GPU machine (docs/performance.md)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import importlib.metadata
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import ROOT, git_commit, machine  # noqa: E402

SUITE_BUDGET_S = 480      # the 8 minutes for every figure, imports and compilation included
DEADLINE_S = 550          # the full run has stopped and exported by then: a 600-s device command keeps a margin
GRACE_S = 20              # a part's process is killed this long after its budget
GRID_METHODS = ("genseg", "genseg_sepdec", "mean_teacher", "ae", "seg_only")     # most wanted first
GRID_PRESETS = ("mnist48_simple", "mnist128", "brats")
PACKAGES = ("numpy", "scipy", "monai", "nibabel", "mlxtend", "triton", "pytest")


# --------------------------------------------------------------------------------------------------- sizes
@dataclass(frozen=True)
class Profile:
    """Sizes of one kind of run: ``gpu`` (published widths, CUDA) or ``dry`` (CPU, tiny, seconds)."""

    name: str
    device: str
    width: float
    batch: int
    warmup: int
    steps: int
    methods: tuple[str, ...]             # of the throughput tables
    fast_presets: tuple[str, ...] = GRID_PRESETS   # of the best / alone tables (eager fp32 covers every preset)
    alone_everywhere: bool = True        # variants alone beyond GenSeg 48 px (the dry run keeps GenSeg's only)
    extra: tuple[str, ...] = ()          # config overrides of every configuration
    no_compile: frozenset[str] = frozenset()   # methods measured without compile (dry run: a GenSeg trace is 12 s)
    config_cost_s: dict[str, float] = field(default_factory=dict)   # guess per configuration before one ran
    dice: dict[str, Any] = field(default_factory=dict)
    data: dict[str, int] = field(default_factory=dict)
    full_run_extra: tuple[str, ...] = ()
    full_run_max_s: float = math.inf
    full_run_margin_s: float = 45.0      # stop this long before the deadline: last step, last.pt, tests, export
    budgets: dict[str, float] = field(default_factory=dict)

    def extra_for(self, method: str, variant: str) -> list[str]:
        off = ["train.compile=false"] if method in self.no_compile and variant in ("best", "compile") else []
        return [*self.extra, *off]


GPU = Profile(
    "gpu", "cuda", 1.0, 20, warmup=3, steps=20, methods=GRID_METHODS,
    config_cost_s={"fp32": 6.0, "bf16": 6.0, "channels_last": 6.0, "fp32_host_data": 6.0, "compile": 60.0,
                   "best": 60.0},
    dice={"eval_every": 250, "max_steps": 20000, "n_train": 20000, "n_eval": 500, "cap_s": 45.0},
    data={"n48": 4000, "n128": 1000, "batches": 200},
    budgets={"genseg48": 90, "gpu_tests": 45, "throughput_fp32": 70, "time_to_dice": 120, "data_ratio": 20,
             "throughput_best": 90, "variants_alone": 35, "nccl": 60},
)
# Tiny: the same code paths in seconds on a 2-core CPU. Compile stays on (dynamo, eager backend: traced, not
# code-generated) for the small methods only; tests/training/test_speed.py traces GenSeg's compile.
DRY = Profile(
    "dry", "cpu", 0.0625, 2, warmup=1, steps=1, methods=("seg_only",), fast_presets=("mnist48_simple",),
    alone_everywhere=False,
    extra=("model.depth=2", "data.mnist.n_train=200", "data.mnist.labeled_fraction=0.05", "data.mnist.n_valid=8",
           "data.mnist.n_test=8", "train.compile_backend=eager"),
    no_compile=frozenset({"genseg", "genseg_sepdec"}),
    dice={"eval_every": 1, "max_steps": 2, "n_train": 200, "n_eval": 8, "cap_s": 10.0},
    data={"n48": 64, "n128": 16, "batches": 3},
    full_run_extra=("model.width=0.0625", "model.depth=2", "train.batch_size=2", "train.device=cpu",
                    "train.eval_every=1", "train.checkpoint_every=2", "train.log_every=1",
                    "data.mnist.n_train=200", "data.mnist.labeled_fraction=0.05", "data.mnist.n_valid=8",
                    "data.mnist.n_test=8"),
    full_run_max_s=0.5, full_run_margin_s=0.0,
    budgets={name: 60 for name in ("genseg48", "gpu_tests", "throughput_fp32", "time_to_dice", "data_ratio",
                                   "throughput_best", "variants_alone", "nccl")},
)


# --------------------------------------------------------------------------------------------------- parts
class PartRun:
    """What a part sees: sizes, its time budget, the suite's results so far, and its result (saved as it grows)."""

    def __init__(self, name: str, profile: Profile, budget_s: float, *, suite: dict[str, Any], out_file: Path | None,
                 args: argparse.Namespace, deadline_epoch: float) -> None:
        self.name, self.profile, self.budget_s, self.suite, self.out_file = name, profile, budget_s, suite, out_file
        self.args, self.deadline_epoch = args, deadline_epoch
        self.t0 = time.monotonic()
        self.result: dict[str, Any] = {}

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def save(self) -> None:
        if self.out_file is not None:
            _write_json(self.out_file, self.result)

    @property
    def cuda(self) -> bool:
        return self.profile.device == "cuda"


def _cleanup() -> None:
    gc.collect()
    torch._dynamo.reset()                  # a fresh trace per configuration: compile time is part of each row
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _measure(pr: PartRun, method: str, preset: str, variant: str) -> dict[str, Any]:
    """One (method, preset, variant) configuration through ``bench_training.run_one``; errors become the row."""
    from bench_training import run_one

    prof = pr.profile
    spec = {"method": method, "preset": preset, "variant": variant, "width": prof.width, "batch": prof.batch,
            "device": prof.device, "steps": prof.steps, "warmup": prof.warmup,
            "extra": prof.extra_for(method, variant)}
    t = time.monotonic()
    try:
        row = run_one(spec)
    except Exception as err:  # one configuration's failure (a compile error, out of memory) must not stop the part
        row = {k: spec[k] for k in ("method", "preset", "variant", "width", "batch")}
        row["error"] = f"{type(err).__name__}: {err}"[:1500]
        row["traceback"] = traceback.format_exc()[-2000:]
    finally:
        _cleanup()
    row["part"], row["seconds"] = pr.name, round(time.monotonic() - t, 1)
    if "compile=false" in " ".join(spec["extra"]):
        row["note"] = "compile off in this profile (dry run)"
    state = f"{row['images_per_s']:.1f} img/s" if "images_per_s" in row else "FAILED " + row["error"][:120]
    print(f"[{pr.name}] {preset:<15}{method:<14}{variant:<14}{state}  ({row['seconds']} s)", flush=True)
    return row


def _grid(pr: PartRun, configs: list[tuple[str, str, str]]) -> None:
    """Measure ``configs`` in order while the part's budget lasts; skip ones the suite already measured."""
    done = {(r["method"], r["preset"], r["variant"]) for r in pr.suite.get("throughput", []) if "images_per_s" in r}
    rows: list[dict[str, Any]] = pr.result.setdefault("rows", [])
    skipped: list[str] = pr.result.setdefault("skipped", [])
    measured: dict[str, float] = {}                   # what earlier parts measured replaces the guesses
    for r in pr.suite.get("throughput", []):
        if "seconds" in r:
            measured[r["variant"]] = max(r["seconds"], measured.get(r["variant"], 0.0))
    cost = {**pr.profile.config_cost_s, **measured}
    for method, preset, variant in configs:
        if (method, preset, variant) in done:
            continue
        # start a configuration when most of its expected time is left: the part's process is killed only
        # GRACE_S after its budget, and the rows measured so far are saved either way
        if pr.left() < 0.6 * cost.get(variant, 0.0):
            skipped.append(f"{method}/{preset}/{variant}: part budget ({pr.left():.0f} s left, "
                           f"~{cost.get(variant, 0.0):.0f} s needed)")
            continue
        row = _measure(pr, method, preset, variant)
        cost[variant] = max(row["seconds"], 0.5 * cost.get(variant, 0.0))
        rows.append(row)
        pr.save()
    failed = [r for r in rows if "error" in r]
    pr.result["status"] = "failed" if failed else ("partial" if skipped else "ok")
    ok = [r for r in rows if "images_per_s" in r]
    pr.result["summary"] = (f"{len(ok)} measured, {len(failed)} failed, {len(skipped)} skipped (budget)")


def part_genseg48(pr: PartRun) -> None:
    _grid(pr, [("genseg", "mnist48_simple", "fp32"), ("genseg", "mnist48_simple", "best")])
    from bench_training import compare_to_fp32

    rows = [dict(r) for r in pr.result.get("rows", [])]
    compare_to_fp32(rows)
    best = next((r for r in rows if r["variant"] == "best" and "speedup_vs_fp32" in r), None)
    if best is not None:
        pr.result["issue7_target"] = {"speedup_vs_fp32": best["speedup_vs_fp32"], "target": 3.0,
                                      "met": best["speedup_vs_fp32"] >= 3.0, "losses_agree": best["losses_agree"]}
        pr.result["summary"] = (f"best {best['speedup_vs_fp32']}x fp32 (target 3x), losses agree: "
                                f"{best['losses_agree']}, syncs/step {(best.get('host_syncs') or {}).get('per_step')}")


def part_throughput_fp32(pr: PartRun) -> None:
    _grid(pr, [(m, p, "fp32") for p in GRID_PRESETS for m in pr.profile.methods])


def part_throughput_best(pr: PartRun) -> None:
    _grid(pr, [(m, p, "best") for m in pr.profile.methods for p in pr.profile.fast_presets])


def part_variants_alone(pr: PartRun) -> None:
    first = [("genseg", "mnist48_simple", v) for v in ("bf16", "channels_last", "compile")]
    rest = [(m, p, v) for v in ("bf16", "channels_last") for p in pr.profile.fast_presets for m in pr.profile.methods
            if pr.profile.alone_everywhere]
    _grid(pr, first + [c for c in rest if c not in first])


def part_gpu_tests(pr: PartRun) -> None:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                   if "pytest.mark.gpu" in p.read_text(encoding="utf-8"))
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", *files]
    pr.result["command"] = " ".join(shlex.quote(c) for c in cmd)
    proc = subprocess.run(cmd, cwd=ROOT, env=_child_env(), capture_output=True, text=True,
                          timeout=max(5.0, pr.left()))
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", proc.stdout)}
    pr.result |= {"returncode": proc.returncode, "counts": counts, "files": files,
                  "output_tail": (proc.stdout + proc.stderr)[-3000:]}
    print(proc.stdout[-1500:], flush=True)
    ran = counts.get("passed", 0) + counts.get("failed", 0)
    pr.result["status"] = "ok" if proc.returncode == 0 and ran > 0 and not counts.get("skipped") else "failed"
    pr.result["summary"] = ", ".join(f"{v} {k}" for k, v in counts.items()) or f"exit code {proc.returncode}"


def part_time_to_dice(pr: PartRun) -> None:
    import bench_time_to_dice as ttd

    prof, d = pr.profile, pr.profile.dice
    rows: list[dict[str, Any]] = pr.result.setdefault("rows", [])
    variants = ["fp32", "best"]
    # both variants get the same cap (training seconds, compilation included); evaluation and set-up are extra
    cap = min(d["cap_s"], 0.7 * pr.left() / len(variants))
    for variant in variants:
        args = argparse.Namespace(target=0.75, metric="dice_per_image", split="valid", eval_every=d["eval_every"],
                                  max_steps=d["max_steps"], n_train=d["n_train"], n_eval=d["n_eval"],
                                  max_seconds=cap)
        t = time.monotonic()
        try:
            row = ttd.run_variant(variant, args, device=prof.device, width=prof.width, batch=prof.batch,
                                  extra=prof.extra_for("genseg", variant))
        except Exception as err:
            row = {"variant": variant, "error": f"{type(err).__name__}: {err}"[:1500],
                   "traceback": traceback.format_exc()[-2000:]}
        finally:
            _cleanup()
        row |= {"cap_train_s": round(cap, 1), "seconds": round(time.monotonic() - t, 1)}
        rows.append(row)
        pr.save()
    pr.result["cap"] = (f"each variant trains at most {rows[0]['cap_train_s']} s (compilation included; evaluation "
                        f"every {d['eval_every']} steps not counted) or {d['max_steps']} steps")
    fp32, best = (next((r for r in rows if r["variant"] == v and "curve" in r), None) for v in variants)
    if fp32 and best:
        a = {c["step"]: c["dice_per_image"] for c in fp32["curve"]}
        common = [(c["step"], a[c["step"]], c["dice_per_image"]) for c in best["curve"] if c["step"] in a]
        pr.result["equal_steps"] = [{"step": s, "fp32": x, "best": y} for s, x, y in common]
        if fp32.get("reached") and best.get("reached"):
            pr.result["speedup_vs_fp32"] = round(fp32["reached"]["train_s"] / best["reached"]["train_s"], 2)
    failed = [r for r in rows if "error" in r]
    pr.result["status"] = "failed" if failed else "ok"
    pr.result["summary"] = "; ".join(f"{r['variant']}: {_dice_outcome(r)}" for r in rows)


def _dice_outcome(row: dict[str, Any]) -> str:
    if "error" in row:
        return "error"
    if row["reached"]:
        return f"reached at step {row['reached']['step']} after {row['reached']['train_s']} s"
    last = (row["curve"] or [{}])[-1]
    dice = last.get("dice_per_image")
    return (f"not reached: {dice if dice is None else round(dice, 3)} at step {last.get('step')} after "
            f"{last.get('train_s')} s (cap {row['cap_train_s']} s)")


def part_data_ratio(pr: PartRun) -> None:
    from bench_data import BATCH, mnist_set, rate

    from weakseg.data.samplers import BatchStream
    from weakseg.training.loop import _batch_to

    device = torch.device(pr.profile.device)
    consumption = _genseg_consumption(pr.suite.get("throughput", []))
    rows = pr.result.setdefault("rows", [])
    n_batches = pr.profile.data["batches"]
    for preset, n in (("mnist48_simple", pr.profile.data["n48"]), ("mnist128", pr.profile.data["n128"])):
        data, gen_rate = mnist_set(preset, n)
        row: dict[str, Any] = {"preset": preset, "generate_samples_per_s": round(gen_rate, 1), "generated": n}
        host = BatchStream(data, torch.arange(len(data)), BATCH, seed=0)

        def images_per_s(fn: Callable[[], object], on: torch.device) -> float:
            return round(BATCH * rate(fn, n_batches, on), 1)

        row["stream_host_images_per_s"] = images_per_s(lambda: next(host), torch.device("cpu"))  # noqa: B023
        if device.type == "cuda":
            row["stream_host_pinned_copy_images_per_s"] = images_per_s(
                lambda: _batch_to(next(host), device, pin=True, channels_last=False), device)  # noqa: B023
            dev = BatchStream(data.to(device), torch.arange(len(data)), BATCH, seed=0, device=device)
            row["stream_device_images_per_s"] = images_per_s(lambda: next(dev), device)  # noqa: B023
        used = row.get("stream_device_images_per_s") or row["stream_host_images_per_s"]
        if preset in consumption:
            row["genseg_training_images_per_s"] = consumption[preset]
            row["ratio_data_over_training"] = round(used / consumption[preset]["images_per_s"], 1)
        rows.append(row)
        pr.save()
    ratios = {r["preset"]: r.get("ratio_data_over_training") for r in rows}
    pr.result["target"] = "ratio >= 5: the training never waits for data (issue 7)"
    pr.result["status"] = "ok"
    pr.result["summary"] = ", ".join(f"{p} ratio {v}" for p, v in ratios.items())


def _genseg_consumption(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """GenSeg's fastest measured images/s per preset (and which variant gave it)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("method") == "genseg" and "images_per_s" in r:
            if r["images_per_s"] > out.get(r["preset"], {}).get("images_per_s", 0.0):
                out[r["preset"]] = {"images_per_s": r["images_per_s"], "variant": r["variant"]}
    return out


def part_nccl(pr: PartRun) -> None:
    n_gpus = torch.cuda.device_count()
    if n_gpus < 2:
        pr.result |= {"status": "skipped: fewer than 2 GPUs", "gpus": n_gpus, "summary": f"{n_gpus} GPU"}
        return
    steps = 60
    with tempfile.TemporaryDirectory(prefix="gpu_suite_nccl_") as tmp:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "weakseg",
               "train", "configs/mnist/mnist48_simple_genseg.yaml", "--out", tmp, "--no-progress",
               *[a for kv in ("model.width=1.0", "train.batch_size=20", f"train.steps={steps}",
                              f"train.eval_every={steps}", f"train.checkpoint_every={steps}",
                              "data.mnist.n_train=2000") for a in ("--set", kv)]]
        pr.result["command"] = " ".join(shlex.quote(c) for c in cmd)
        t = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, env=_child_env(), capture_output=True, text=True,
                              timeout=max(5.0, pr.left()))
        pr.result |= {"returncode": proc.returncode, "wall_s": round(time.monotonic() - t, 1), "gpus": n_gpus,
                      "output_tail": (proc.stdout + proc.stderr)[-3000:]}
        last = Path(tmp) / "checkpoints" / "last.pt"
        step = int(torch.load(last, map_location="cpu", weights_only=True)["step"]) if last.is_file() else None
    pr.result["checkpoint_step"] = step
    pr.result["status"] = "ok" if proc.returncode == 0 and step == steps else "failed"
    pr.result["summary"] = f"2 processes, {steps} steps, exit {proc.returncode}, {pr.result['wall_s']} s"


@contextlib.contextmanager
def _deadline_stop(stop_at: float) -> Iterator[None]:
    """Make ``fit`` stop at ``stop_at`` (monotonic) exactly as on SIGTERM, without sending a signal.

    ``fit`` polls its ``StopRequest`` once per step; a request that turns itself on at the deadline finishes the
    step (with its evaluation and checkpoint, if due), writes ``last.pt`` and raises ``TrainingInterrupted``.
    """
    import weakseg.training.loop as loop

    base = loop.StopRequest

    class DeadlineStop(base):  # type: ignore[misc, valid-type]
        @property
        def requested(self) -> bool:
            if self.signum is None and time.monotonic() >= stop_at:
                self.signum = int(signal.SIGTERM)
            return self.signum is not None

    loop.StopRequest = DeadlineStop
    try:
        yield
    finally:
        loop.StopRequest = base


def full_run_config(profile: Profile, extra: list[str]) -> tuple[Any, list[str]]:
    """The ``full``-scale GenSeg run on mnist48_simple exactly as ``weakseg reproduce mnist`` defines it (seed 0)."""
    from weakseg.config import load_config
    from weakseg.reproduce.mnist import grid

    spec = grid("full", presets=("mnist48_simple",), methods=("genseg",), seeds=(0,))[0]
    overrides = [*spec.overrides, f"train.seed={spec.seed}", *profile.full_run_extra, *extra]
    return load_config(spec.config, overrides), [spec.config, *overrides]


def part_full_run(pr: PartRun) -> None:
    import gpu_carry

    from weakseg.inference.report import evaluate_run
    from weakseg.training.loop import fit
    from weakseg.training.signals import TrainingInterrupted

    prof, args = pr.profile, pr.args
    cfg, recipe = full_run_config(prof, list(args.full_run_set))
    pr.result["recipe"] = recipe
    carry_in = Path(args.full_run_from) if args.full_run_from else None
    carry_out = Path(args.full_run_out)
    with tempfile.TemporaryDirectory(prefix="gpu_full_run_") as tmp:
        run_dir = Path(tmp) / "run"
        previous = None
        if carry_in is not None and (carry_in / "state.pt").is_file():
            previous = gpu_carry.import_run(carry_in, run_dir)
            print(f"[full_run] continuing from {carry_in} at step {previous['step']}", flush=True)
        start = int(previous["step"]) if previous else 0
        stop_at = min(time.monotonic() + (pr.deadline_epoch - time.time()) - prof.full_run_margin_s,
                      time.monotonic() + prof.full_run_max_s)
        left = stop_at - time.monotonic()
        if left < (30.0 if prof.device == "cuda" else 0.1):
            pr.result |= {"status": f"skipped: {left:.0f} s left before the deadline", "summary": "no time left"}
            return
        t = time.monotonic()
        try:
            with _deadline_stop(stop_at):
                fit(cfg, run_dir, resume=previous is not None, progress=False)
            ended, step = "finished", max(start, cfg.train.steps)
        except TrainingInterrupted as stop:
            ended, step = f"time box (stopped cleanly after step {stop.step})", stop.step
        wall = time.monotonic() - t
        tests = {"last": evaluate_run(run_dir, split="test", which="last", write=False)["metrics"]}
        if (run_dir / "checkpoints" / "best.pt").is_file():      # a new best in this window
            tests["best"] = evaluate_run(run_dir, split="test", which="best", write=False)["metrics"]
        window = {"date": _now(), "device": _device_name(), "git_commit": git_commit(), "start_step": start,
                  "end_step": step, "train_wall_s": round(wall, 1),
                  "steps_per_s": round((step - start) / wall, 2) if wall > 0 else None, "ended": ended,
                  "test_dice_per_image_last": _metric(tests["last"], "dice_per_image"),
                  "test_at_best": tests.get("best"), "continued_from_carry": previous is not None}
        curve = [*(previous["curve"] if previous else []),
                 *gpu_carry.curve_from_metrics(run_dir / "metrics.jsonl", since_step=start)]
        windows = [*(previous["windows"] if previous else []), window]
        exported = gpu_carry.export_run(run_dir / "checkpoints" / "last.pt", carry_out, curve=curve,
                                        windows=windows)
    best = exported["best"]
    pr.result |= {"steps_target": cfg.train.steps, "step": step, "ended": ended, "window": window,
                  "windows": windows, "curve": curve, "best": best, "test_last": tests["last"],
                  "exported": {"folder": str(carry_out), **exported},
                  "continue": ("copy the returned full_run/ folder to runs/gpu_full_run/ and run the suite again "
                               "with carry runs/gpu_full_run (docs/performance.md)"),
                  "status": "ok",
                  "summary": f"steps {start} -> {step} of {cfg.train.steps} ({ended}), "
                             f"valid best {best and best.get('value')}, exported {exported['total_mib']} MiB"}


def _metric(metrics: dict[str, Any], name: str) -> Any:
    value = metrics.get(name)
    return value.get("mean") if isinstance(value, dict) else value


@dataclass(frozen=True)
class Part:
    name: str
    what: str
    est_s: float             # on one H100: a guess until a run of the suite measured it
    needs_cuda: bool
    run: Callable[[PartRun], None]


PARTS: tuple[Part, ...] = (
    Part("genseg48", "GenSeg 48 px: eager fp32 vs best; images/s, peak memory, first losses, syncs/step", 70, False,
         part_genseg48),
    Part("gpu_tests", "pytest -m gpu (on-device batches, sync-free steps)", 35, True, part_gpu_tests),
    Part("throughput_fp32", "eager fp32 images/s + peak memory, 5 methods x 3 shapes", 60, False,
         part_throughput_fp32),
    Part("time_to_dice", "GenSeg to valid Dice 0.75, fp32 vs best, capped", 115, False, part_time_to_dice),
    Part("data_ratio", "data pipeline images/s vs GenSeg consumption", 15, False, part_data_ratio),
    Part("throughput_best", "best fast path for the other pairs, GenSeg first", 90, False, part_throughput_best),
    Part("variants_alone", "bf16 / channels_last / compile alone", 35, False, part_variants_alone),
    Part("nccl", "2-process nccl smoke run (needs 2 GPUs)", 0, True, part_nccl),
    Part("full_run", "paper-scale GenSeg mnist48_simple until the deadline; exported for the next call", 0, False,
         part_full_run),
)
PART_NAMES = tuple(p.name for p in PARTS)


# ----------------------------------------------------------------------------------------------- machinery
def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def _child_env() -> dict[str, str]:
    path = [str(ROOT / "src"), str(ROOT), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}


def environment() -> dict[str, Any]:
    """Device, CUDA, torch and package versions (part ``env``, in the suite's own process)."""
    versions = {"torch": torch.__version__, "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    info: dict[str, Any] = {"device": _device_name(), "gpu_count": torch.cuda.device_count(), "versions": versions}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {"capability": f"{props.major}.{props.minor}", "memory_gib": round(props.total_memory / 2**30, 1),
                 "multiprocessors": props.multi_processor_count}
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            info["driver"] = smi.stdout.strip() or None
    return info


def previous_seconds(path: Path) -> dict[str, float]:
    """Measured seconds per part from an earlier GPU run of the suite (the plan's estimates), if any."""
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if rec.get("profile") != "gpu":
        return {}
    return {n: p["seconds"] for n, p in rec.get("parts", {}).items() if isinstance(p.get("seconds"), int | float)
            and not str(p.get("status", "")).startswith("skipped")}


def plan(profile: Profile, names: list[str], budget: float, deadline: float,
         measured: dict[str, float]) -> list[dict[str, Any]]:
    rows, t = [], 0.0
    for part in PARTS:
        if part.name not in names:
            continue
        if part.name == "full_run":
            est, source = max(0.0, deadline - t), "the rest of the call, up to the deadline"
        else:
            est = measured.get(part.name, part.est_s)
            source = "measured (results/gpu_suite.json)" if part.name in measured else "guess"
            est = min(est, profile.budgets.get(part.name, est))
        t += est
        rows.append({"part": part.name, "what": part.what, "est_s": round(est), "budget_s":
                     profile.budgets.get(part.name), "cumulative_s": round(t), "estimate": source})
    return rows


def print_plan(rows: list[dict[str, Any]], budget: float, deadline: float) -> None:
    print(f"{'#':<3}{'part':<17}{'est s':>6}{'budget':>8}{'cum s':>7}  {'estimate':<42}what")
    for i, r in enumerate(rows, 1):
        print(f"{i:<3}{r['part']:<17}{r['est_s']:>6}{str(r['budget_s'] or '-'):>8}{r['cumulative_s']:>7}  "
              f"{r['estimate']:<42}{r['what']}")
    figures = sum(r["est_s"] for r in rows if r["part"] != "full_run")
    print(f"figures: ~{figures:.0f} s of the {budget:.0f}-s budget (8 min); the full run takes the rest up to "
          f"{deadline:.0f} s; no part starts past the budget, and every part stops at its own budget")


def run_part(part: Part, pr: PartRun) -> None:
    """Run one part in this process; its exceptions become its status."""
    try:
        part.run(pr)
        pr.result.setdefault("status", "ok")
    except Exception as err:
        pr.result["status"] = f"failed: {type(err).__name__}: {err}"[:500]
        pr.result["traceback"] = traceback.format_exc()[-3000:]
        print(f"[{part.name}] FAILED\n{pr.result['traceback']}", flush=True)
    pr.save()


def run_part_in_child(part: Part, budget: float, args: argparse.Namespace, suite_file: Path,
                      deadline_epoch: float, timeout: float) -> dict[str, Any]:
    """Run one part in its own process (clean memory and compile caches); a crash or hang costs that part only."""
    with tempfile.TemporaryDirectory(prefix=f"gpu_suite_{part.name}_") as tmp:
        out = Path(tmp) / "part.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", part.name, "--worker-out", str(out),
               "--worker-budget", f"{budget:.1f}", "--worker-suite", str(suite_file),
               "--worker-deadline", f"{deadline_epoch:.3f}", *(["--dry-run"] if args.dry_run else []),
               "--full-run-out", str(args.full_run_out),
               *(["--full-run-from", str(args.full_run_from)] if args.full_run_from else []),
               *[a for kv in args.full_run_set for a in ("--full-run-set", kv)]]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_child_env(), start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            killed = False
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
        result = json.loads(out.read_text()) if out.is_file() else {}
    if killed:
        result["status"] = f"timeout: killed after {timeout:.0f} s (budget {budget:.0f} s); results so far kept"
    elif proc.returncode != 0 and not str(result.get("status", "")).startswith("failed"):
        result["status"] = f"failed: its process exited with code {proc.returncode} (see the log above)"
    return result


def failed(status: str) -> bool:
    return status.startswith(("failed", "timeout"))


def summary_lines(rec: dict[str, Any]) -> list[str]:
    lines = [f"{'part':<17}{'status':<12}{'seconds':>8}  figures"]
    for name, p in rec["parts"].items():
        status = str(p.get("status", "?"))
        lines.append(f"{name:<17}{status.split(':')[0][:11]:<12}{p.get('seconds', 0):>8.1f}  "
                     f"{p.get('summary') or status}")
    rows = rec.get("throughput", [])
    if rows:
        lines += ["", f"{'preset':<15}{'method':<14}{'variant':<15}{'img/s':>9}{'x fp32':>8}{'peak MiB':>10}"
                      f"{'loss ok':>8}{'syncs':>7}"]
        for r in rows:
            mem = next((v for k, v in r.items() if k.endswith("_mib")), None)
            syncs = (r.get("host_syncs") or {}).get("per_step")
            lines.append(f"{r['preset']:<15}{r['method']:<14}{r['variant']:<15}"
                         + (f"{r['images_per_s']:>9.1f}" if "images_per_s" in r else f"{'FAILED':>9}")
                         + f"{r.get('speedup_vs_fp32', ''):>8}{mem if mem is not None else '':>10}"
                         + f"{str(r.get('losses_agree', '')):>8}{syncs if syncs is not None else '':>7}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", action="store_true", help="print the plan (parts, order, seconds) and exit")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: every part's code path in seconds")
    p.add_argument("--out", type=Path, default=None,
                   help="folder of gpu_suite.json (default results/; dry run: runs/gpu_suite_dry/)")
    p.add_argument("--parts", nargs="*", choices=PART_NAMES, default=None, help="run only these parts (in order)")
    p.add_argument("--skip", nargs="*", choices=PART_NAMES, default=[], help="leave these parts out")
    p.add_argument("--budget", type=float, default=None, help=f"seconds for every part but full_run "
                                                              f"(default {SUITE_BUDGET_S})")
    p.add_argument("--deadline", type=float, default=None,
                   help="seconds after the start by which the full run has stopped and exported "
                        f"(default {DEADLINE_S})")
    p.add_argument("--in-process", action="store_true", help="run the parts in this process (the dry run does)")
    p.add_argument("--isolate", action="store_true", help="dry run: one process per part, as on the GPU")
    p.add_argument("--full-run-from", type=Path, default=None,
                   help="folder carried from the previous call (state.pt, weights_NN.pt) to continue the full run")
    p.add_argument("--full-run-out", type=Path, default=None,
                   help="where the full run exports its files (default runs/gpu_full_run_out; device: $OUT/full_run)")
    p.add_argument("--full-run-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override of the full run, e.g. train.compile=true (keep it the same across calls "
                        "unless weakseg allows the key to change on resume)")
    for name in ("--worker", "--worker-out", "--worker-budget", "--worker-suite", "--worker-deadline"):
        p.add_argument(name, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    profile = DRY if args.dry_run else GPU
    args.full_run_out = args.full_run_out or ROOT / "runs" / ("gpu_full_run_dry" if args.dry_run else
                                                             "gpu_full_run_out")

    if args.worker:                                              # one part, in a process of its own
        suite = json.loads(Path(args.worker_suite).read_text())
        part = next(x for x in PARTS if x.name == args.worker)
        pr = PartRun(part.name, profile, float(args.worker_budget), suite=suite, out_file=Path(args.worker_out),
                     args=args, deadline_epoch=float(args.worker_deadline))
        run_part(part, pr)
        return 0

    budget = args.budget if args.budget is not None else (60.0 if args.dry_run else SUITE_BUDGET_S)
    deadline = args.deadline if args.deadline is not None else (budget + 30.0 if args.dry_run else DEADLINE_S)
    names = [n for n in (args.parts or PART_NAMES) if n not in args.skip]
    out_dir = args.out or (ROOT / "runs" / "gpu_suite_dry" if args.dry_run else ROOT / "results")
    out_file = out_dir / ("gpu_suite_dry.json" if args.dry_run else "gpu_suite.json")
    rows = plan(profile, names, budget, deadline, previous_seconds(ROOT / "results" / "gpu_suite.json"))
    if args.plan:
        print_plan(rows, budget, deadline)
        return 0

    t0, start_epoch = time.monotonic(), time.time()
    deadline_epoch = start_epoch + deadline
    cuda = torch.cuda.is_available()
    if profile.name == "gpu" and not cuda:
        print("gpu_suite: no CUDA device here; run it on a GPU machine, or --dry-run for the CPU dry run", flush=True)
        return 2
    rec: dict[str, Any] = {
        "benchmark": "gpu_suite: every pending GPU figure in one command (docs/performance.md)",
        "profile": profile.name, "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "git_commit": git_commit(), "date": _now(), "machine": machine(), "budget_s": budget, "deadline_s": deadline,
        "sizes": {"width": profile.width, "batch_per_stream": profile.batch, "warmup_steps": profile.warmup,
                  "timed_steps": profile.steps, "extra_overrides": list(profile.extra)},
        "plan": rows, "parts": {}, "throughput": [],
    }
    t = time.monotonic()
    rec["env"] = environment()
    rec["parts"]["env"] = {"status": "ok", "seconds": round(time.monotonic() - t, 1),
                           "summary": f"{rec['env']['device']}, torch {rec['env']['versions']['torch']}, "
                                      f"CUDA {rec['env']['versions']['cuda']}"}
    _write_json(out_file, rec)
    print(f"gpu_suite ({profile.name}): {rec['parts']['env']['summary']}; writing {out_file}", flush=True)

    from bench_training import compare_to_fp32

    for part in PARTS:
        if part.name not in names:
            continue
        elapsed = time.monotonic() - t0
        if part.needs_cuda and profile.device != "cuda":
            rec["parts"][part.name] = {"status": "skipped: no CUDA" + (" (dry run on the CPU)" if cuda else ""),
                                       "seconds": 0.0}
            _write_json(out_file, rec)
            continue
        if part.name == "full_run":
            part_budget = deadline - elapsed
            timeout = part_budget + GRACE_S
        else:
            part_budget = min(profile.budgets[part.name], budget - elapsed)
            timeout = part_budget + GRACE_S
        if part_budget < (10.0 if cuda else 1.0):
            rec["parts"][part.name] = {"status": f"skipped: suite budget used ({elapsed:.0f} s elapsed)",
                                       "seconds": 0.0}
            _write_json(out_file, rec)
            continue
        print(f"--- {part.name} (budget {part_budget:.0f} s, {elapsed:.0f} s elapsed)", flush=True)
        t = time.monotonic()
        if args.in_process or (args.dry_run and not args.isolate):
            pr = PartRun(part.name, profile, part_budget, suite=rec, out_file=None, args=args,
                         deadline_epoch=deadline_epoch)
            run_part(part, pr)
            result = pr.result
        else:
            result = run_part_in_child(part, part_budget, args, out_file, deadline_epoch, timeout)
        result["seconds"] = round(time.monotonic() - t, 1)
        result["budget_s"] = round(part_budget, 1)
        rec["parts"][part.name] = result
        rec["throughput"] = [r for n in ("genseg48", "throughput_fp32", "throughput_best", "variants_alone")
                             for r in rec["parts"].get(n, {}).get("rows", [])]
        compare_to_fp32(rec["throughput"])
        rec["elapsed_s"] = round(time.monotonic() - t0, 1)
        _write_json(out_file, rec)

    bad = [n for n, p in rec["parts"].items() if failed(str(p.get("status", "")))]
    rec["failed_parts"] = bad
    rec["elapsed_s"] = round(time.monotonic() - t0, 1)
    _write_json(out_file, rec)
    print("\n".join(["", f"gpu_suite ({profile.name}) summary, {rec['elapsed_s']} s; {out_file}",
                     *summary_lines(rec)]), flush=True)
    if bad:
        print(f"failed parts: {', '.join(bad)}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
