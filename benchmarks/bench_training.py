"""Training throughput (images/s) and peak memory per method, preset and speed variant.

Each configuration runs in its own subprocess (clean peak memory, clean compile caches): build data and
method exactly as ``fit`` does, run warm-up steps (compilation happens there; their losses are recorded),
then time ``--steps`` steps between two device synchronisations. One step = every step function once; images
per step count every stream (GenSeg: B P + B A images).

    PYTHONPATH=src python benchmarks/bench_training.py --cpu-quick     # 2-core CPU, reduced sizes, minutes
    PYTHONPATH=src python benchmarks/bench_training.py                 # GPU: published widths, batch 20 + 20

On GPU the variants run side by side: ``fp32`` (eager, the original's regime, data already on the GPU),
``fp32_host_data`` (same, batches gathered on the CPU and copied each step), ``bf16``, ``compile``,
``channels_last`` and ``best`` (bf16 + compile + channels_last); speed-ups are relative to ``fp32`` and the
first steps' total losses are compared with ``fp32`` (tolerances ``LOSS_RTOL``). On CPU only ``fp32`` runs
(autocast is CUDA-only here and compiling takes minutes on 2 cores) unless ``--variants`` names more.
Writes ``results/bench_training_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import METHODS, PRESETS, RESULTS, ROOT, peak_memory_mib, record, sync  # noqa: E402

VARIANTS: dict[str, list[str]] = {
    "fp32": ["train.amp='off'", "data.on_device=always"],
    "fp32_host_data": ["train.amp='off'", "data.on_device=never"],
    "bf16": ["train.amp=bf16", "data.on_device=always"],
    "compile": ["train.amp='off'", "data.on_device=always", "train.compile=true"],
    "channels_last": ["train.amp='off'", "data.on_device=always", "train.channels_last=true"],
    "best": ["train.amp=bf16", "data.on_device=always", "train.compile=true", "train.channels_last=true"],
}
# Relative tolerance on the total loss of each warm-up step vs fp32: fp32 variants differ by summation order
# and TF32 convolutions only; bf16 keeps 8 mantissa bits.
LOSS_RTOL = {"fp32": 0.0, "fp32_host_data": 1e-3, "compile": 1e-2, "channels_last": 1e-2, "bf16": 5e-2, "best": 5e-2}
GPU_SCALE = {"mnist48_simple": (1.0, 20), "mnist128": (1.0, 20), "brats": (1.0, 20)}        # width, batch
CPU_SCALE = {"mnist48_simple": (0.25, 8), "mnist128": (0.25, 4), "brats": (0.125, 2)}


def _register_synthetic_brats() -> None:
    """BraTS-shaped random data (4 x 240 x 120 hemispheres): no BraTS files are needed to time a step."""
    from weakseg.data.datasets import TensorSampleSet
    from weakseg.data.registry import DataBundle, register_dataset
    from weakseg.data.status import ABSENT, MASK, PRESENT

    @register_dataset("synthetic_brats")
    def build(cfg: Any) -> DataBundle:
        g = torch.Generator().manual_seed(0)
        n = 96
        images = torch.rand(n, 4, 240, 120, generator=g) * 2 - 1
        status = torch.full((n, 1), PRESENT, dtype=torch.int8)
        status[n // 2:] = ABSENT
        status[: n // 8] = MASK                               # a few labelled P slices
        masks = torch.zeros(n, 1, 240, 120, dtype=torch.uint8)
        masks[: n // 8, :, 100:140, 40:80] = 1
        split = TensorSampleSet(images, status, masks, status[:, 0] == MASK, class_names=("tumour",))
        return DataBundle(splits={"train": split, "valid": split, "test": split}, class_names=("tumour",),
                          in_channels=4, scoring=lambda *a: {}, value_range=(-1.0, 1.0))


def config_for(method: str, preset: str, width: float, batch: int, extra: list[str]):
    from weakseg.config import load_config

    base = "mnist48_simple" if preset == "brats" else preset
    sets = [f"model.width={width}", f"train.batch_size={batch}", f"model.depth={PRESETS[preset]['depth']}",
            "data.mnist.n_train=2000", "data.mnist.n_valid=20", "data.mnist.n_test=20", *extra]
    if preset == "brats":
        sets.append("data.name=synthetic_brats")
    return load_config(ROOT / "configs" / "mnist" / f"{base}_{METHODS[method]}.yaml", sets)


def setup(method_name: str, preset: str, variant: str, width: float, batch: int, device_name: str,
          extra: list[str] | None = None) -> dict[str, Any]:
    """Data, method, streams and a ``step(i)`` function built as ``fit`` builds them (no run folder)."""
    from weakseg.data.registry import build_data
    from weakseg.methods.registry import build_method
    from weakseg.training.context import LoopContext, amp_dtype, resolve_device
    from weakseg.training.loop import _batch_to, apply_speed_switches, build_streams, move_data_to_device
    from weakseg.training.seed import seed_everything

    _register_synthetic_brats()
    cfg = config_for(method_name, preset, width, batch, VARIANTS[variant] + [f"train.device={device_name}",
                                                                            *(extra or [])])
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    t = time.perf_counter()
    data = build_data(cfg)
    data_build_s = time.perf_counter() - t
    move_data_to_device(cfg, data, device)
    method = build_method(cfg, data, device)
    streams = build_streams(cfg, data, method)
    applied = apply_speed_switches(cfg, method, device)
    ctx = LoopContext(cfg=cfg, device=device, dtype=amp_dtype(cfg, device),
                      generator=torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(7))

    def step(i: int) -> tuple[dict[str, torch.Tensor], int]:
        ctx.step = i
        batches = {n: _batch_to(next(s), device, pin=cfg.train.pin_memory, channels_last=cfg.train.channels_last)
                   for n, s in streams.items()}
        method.set_training(True)
        logs: dict[str, torch.Tensor] = {}
        for fn in method.steps:
            logs |= fn(method, batches, ctx)
        return logs, sum(len(b) for b in batches.values())

    return {"cfg": cfg, "device": device, "data": data, "method": method, "ctx": ctx, "step": step,
            "applied": applied, "data_build_s": data_build_s}


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One configuration in this process; returns its figures."""
    s = setup(spec["method"], spec["preset"], spec["variant"], spec["width"], spec["batch"], spec["device"],
              extra=spec.get("extra"))
    device, ctx, step, applied, data_build_s = s["device"], s["ctx"], s["step"], s["applied"], s["data_build_s"]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    losses, warm_s = [], []
    for i in range(spec["warmup"]):                            # compilation happens here
        t = time.perf_counter()
        logs, _ = step(i)
        losses.append(float(sum(v.float() for k, v in logs.items() if "/" in k)))   # weighted terms only
        sync(device)
        warm_s.append(time.perf_counter() - t)
    syncs = None
    if device.type == "cuda":                                  # count host-device syncs in two steady steps
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            for i in range(2):
                step(spec["warmup"] + i)
            torch.cuda.set_sync_debug_mode(0)
        syncs = {"per_step": len(caught) / 2, "sources": sorted({str(w.message)[:120] for w in caught})[:5]}
        sync(device)
    start_i = spec["warmup"] + 2
    images = 0
    sync(device)
    t = time.perf_counter()
    for i in range(spec["steps"]):
        images += step(start_i + i)[1]
    sync(device)
    elapsed = time.perf_counter() - t
    return {**{k: spec[k] for k in ("method", "preset", "variant", "width", "batch")},
            "applied": applied, "autocast": str(ctx.dtype) if ctx.dtype else "off",
            "images_per_step": images // spec["steps"], "timed_steps": spec["steps"],
            "step_ms": round(1000 * elapsed / spec["steps"], 2), "images_per_s": round(images / elapsed, 1),
            "warmup_s": [round(w, 3) for w in warm_s], "first_losses": losses, "host_syncs": syncs,
            "data_build_s": round(data_build_s, 3), **peak_memory_mib(device)}


def compare_to_fp32(rows: list[dict[str, Any]]) -> None:
    """Speed-up and first-loss agreement of each row against fp32 of the same method and preset, in place."""
    base = {(r["method"], r["preset"]): r for r in rows if r["variant"] == "fp32" and "images_per_s" in r}
    for r in rows:
        ref = base.get((r["method"], r["preset"]))
        if ref is None or "images_per_s" not in r:
            continue
        r["speedup_vs_fp32"] = round(r["images_per_s"] / ref["images_per_s"], 2)
        pairs = list(zip(r["first_losses"], ref["first_losses"]))
        rel = max((abs(a - b) / max(abs(b), 1e-8) for a, b in pairs), default=0.0)
        r["loss_max_rel_diff_vs_fp32"] = round(rel, 6)
        r["losses_agree"] = rel <= LOSS_RTOL[r["variant"]] or r["variant"] == "fp32"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-quick", action="store_true", help="CPU, reduced widths and batches, fp32 only")
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument("--presets", nargs="*", default=list(PRESETS))
    p.add_argument("--variants", nargs="*", default=None, help="GPU variants (default: all)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 30 GPU, 4 CPU)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 5 GPU, 2 CPU)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--one", help=argparse.SUPPRESS)             # internal: run one configuration (JSON spec)
    args = p.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(run_one(json.loads(args.one))))
        return 0

    gpu = torch.cuda.is_available() and not args.cpu_quick
    device = "cuda" if gpu else "cpu"
    # CPU: fp32 unless variants are named (e.g. ``--variants fp32 compile``: inductor's C++ code generation
    # on the CPU, a check of the compiled step and its first losses; bf16 autocast is off on the CPU).
    variants = (args.variants or list(VARIANTS)) if gpu else (args.variants or ["fp32"])
    scale = GPU_SCALE if gpu else CPU_SCALE
    steps, warmup = args.steps or (30 if gpu else 4), args.warmup or (5 if gpu else 2)
    rows, failures = [], []
    for preset in args.presets:
        for method in args.methods:
            for variant in variants:
                width, batch = scale[preset]
                spec = {"method": method, "preset": preset, "variant": variant, "width": width, "batch": batch,
                        "device": device, "steps": steps, "warmup": warmup}
                proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], cwd=ROOT,
                                      capture_output=True, text=True)
                line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if proc.returncode or not line:
                    failures.append({**spec, "error": (proc.stderr or proc.stdout)[-1500:]})
                    print(f"{preset:<15}{method:<14}{variant:<15} FAILED", flush=True)
                    continue
                row = json.loads(line[0][7:])
                rows.append(row)
                print(f"{preset:<15}{method:<14}{variant:<15}{row['images_per_s']:>9.1f} img/s {row['step_ms']:>9.1f} "
                      f"ms/step  {next(iter(v for k, v in row.items() if k.endswith('_mib')))} MiB", flush=True)
    compare_to_fp32(rows)
    out = args.out or RESULTS / f"bench_training_{'gpu' if gpu else 'cpu_quick'}.json"
    rec = record("training throughput: images/s, peak memory, speed-up and first-loss agreement vs eager fp32",
                 device=device, scale={k: {"width": w, "batch_per_stream": b} for k, (w, b) in scale.items()},
                 timed_steps=steps, warmup_steps=warmup, loss_rtol=LOSS_RTOL if gpu else None,
                 results=rows, failures=failures,
                 note=("GPU: published widths (1.0) and batch 20 (+20 A images for two-stream methods)" if gpu else
                       "CPU quick: reduced widths and batches (see scale); fp32 eager only; one configuration per "
                       "subprocess; other jobs share the 2 cores (see machine.load_average_1m)"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2) + "\n")
    print(f"wrote {out}")
    return 1 if failures and not rows else 0


if __name__ == "__main__":
    raise SystemExit(main())
