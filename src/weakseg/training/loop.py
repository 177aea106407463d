"""``fit``: the only training loop. Methods plug in step functions; the loop owns everything else.

It seeds, builds data and method, draws one batch per stream, runs the method's step functions, logs,
evaluates on the validation split, keeps ``best.pt`` on the selection metric and ``last.pt`` every
``train.checkpoint_every`` steps, and resumes exactly from ``last.pt``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from weakseg.config.io import diff_configs, dump_yaml, to_dict
from weakseg.config.schema import Config
from weakseg.data.mixing import MixedStream
from weakseg.data.registry import DataBundle, build_data
from weakseg.data.samplers import BatchStream, pool_indices
from weakseg.errors import WeaksegError
from weakseg.methods.registry import Method, build_method
from weakseg.training.checkpoint import load_checkpoint, save_checkpoint
from weakseg.training.context import StepContext, amp_dtype, resolve_device
from weakseg.training.faults import FaultGuard          # reliab hook
from weakseg.training.logging import RunLogger, flatten_scalars
from weakseg.training.seed import capture_rng, restore_rng, seed_everything
from weakseg.training.signals import StopRequest        # reliab hook

# Keys that may change between a run and its resumption (they do not change what is learned).
RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.eval_every", "train.checkpoint_every",
                     "train.device", "eval.batch_size", "eval.checkpoint",
                     "train.nonfinite", "train.max_skipped", "train.max_rollbacks")   # reliab: fault policy


@dataclass
class RunPaths:
    root: Path

    @property
    def last(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "checkpoints" / "best.pt"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"


def build_streams(cfg: Config, data: DataBundle, method: Method) -> dict[str, BatchStream]:
    train = data.split("train")
    streams = {}
    for i, (name, pool) in enumerate(sorted(method.streams.items())):
        idx = pool_indices(train, pool, class_index=cfg.data.class_index)
        seed = cfg.train.seed * 1009 + i
        m = cfg.train.min_labeled_per_batch
        if m > 0 and pool in ("p", "all") and m < cfg.train.batch_size:   # oversample labelled images
            pool_m = cfg.train.labelled_pool
            lab = pool_indices(train, pool_m, class_index=cfg.data.class_index)
            streams[name] = MixedStream(BatchStream(train, lab, m, seed=seed + 500, name=pool_m),
                                        BatchStream(train, idx, cfg.train.batch_size - m, seed=seed, name=name))
        else:
            streams[name] = BatchStream(train, idx, cfg.train.batch_size, seed=seed, name=name)
    return streams


def check_inputs(data: DataBundle, streams: dict[str, BatchStream]) -> None:
    """Reject wrong channel counts and out-of-range images before any training step."""
    lo, hi = data.value_range
    for name, stream in streams.items():
        batch = stream.data.batch(stream.indices[: min(len(stream.indices), 64)])
        if batch.image.shape[1] != data.in_channels:
            raise WeaksegError(f"stream {name}: images have {batch.image.shape[1]} channels, the dataset declares "
                               f"{data.in_channels}; check the dataset's channel list")
        mn, mx = float(batch.image.min()), float(batch.image.max())
        if not (math.isfinite(mn) and math.isfinite(mx)) or mn < lo or mx > hi:
            raise WeaksegError(f"stream {name}: image values span [{mn:.3g}, {mx:.3g}], outside the expected "
                               f"[{lo}, {hi}]; normalise the images (weakseg convert does) or fix the source files")


def _state(method: Method, streams: dict[str, BatchStream], ctx: StepContext, cfg: Config,
           step: int, best: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "method": method.name,
        "config": to_dict(cfg),
        "models": {name: m.state_dict() for name, m in method.models.items()},
        "optimizers": {name: o.state_dict() for name, o in method.optimizers.items()},
        "method_state": method.state,
        "streams": {name: s.state_dict() for name, s in streams.items()},
        "rng": capture_rng(),
        "generator": ctx.generator.get_state(),
        "scaler": None,                     # bf16 needs no GradScaler
        "step": step,
        "best": best,
    }


def _better(value: float | None, best: dict[str, Any] | None, mode: str) -> bool:
    if value is None or not math.isfinite(value):
        return False
    if best is None or best.get("value") is None:
        return True
    return value > best["value"] if mode == "max" else value < best["value"]


def fit(cfg: Config, run_dir: str | Path, *, resume: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir``; returns a summary (steps, best, wall time, last validation)."""
    paths = RunPaths(Path(run_dir))
    ckpt = None
    if resume:
        if not paths.last.is_file():
            raise WeaksegError(f"--resume: no checkpoint at {paths.last}; start without --resume")
        ckpt = load_checkpoint(paths.last)
        changed = [k for k in diff_configs(ckpt["config"], to_dict(cfg)) if k not in RESUMABLE_CHANGES]
        if changed:
            raise WeaksegError(f"--resume: the config differs from the run's in {', '.join(changed)}; "
                               f"only {', '.join(RESUMABLE_CHANGES)} may change (or use a new --out folder)")
    elif paths.last.is_file():
        raise WeaksegError(f"{paths.root} already holds a run (checkpoints/last.pt); pass --resume to continue it "
                           "or choose another --out folder")

    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    data = build_data(cfg)
    method = build_method(cfg, data, device)
    streams = build_streams(cfg, data, method)
    check_inputs(data, streams)
    gen_device = device if device.type == "cuda" else torch.device("cpu")
    ctx = StepContext(cfg=cfg, device=device, dtype=amp_dtype(cfg, device),
                      generator=torch.Generator(device=gen_device).manual_seed(cfg.train.seed + 7919))

    start, best = 0, None
    if ckpt is not None:
        for name, sd in ckpt["models"].items():
            method.models[name].load_state_dict(sd)
        for name, sd in ckpt["optimizers"].items():
            method.optimizers[name].load_state_dict(sd)
        for name, sd in ckpt["streams"].items():
            streams[name].load_state_dict(sd)
        method.state.update(ckpt.get("method_state") or {})
        restore_rng(ckpt["rng"])
        ctx.generator.set_state(ckpt["generator"])
        start, best = int(ckpt["step"]), ckpt["best"]

    paths.root.mkdir(parents=True, exist_ok=True)
    (paths.root / "checkpoints").mkdir(exist_ok=True)
    dump_yaml(cfg, paths.config)
    logger = RunLogger(paths.root)
    logger.info(f"{'resuming' if ckpt else 'starting'} {cfg.method} at step {start}/{cfg.train.steps} on {device}; "
                f"data {cfg.data.name}: {data.info}")
    n_params = {name: sum(p.numel() for p in m.parameters() if p.requires_grad) for name, m in method.models.items()}
    logger.info(f"trainable parameters: {n_params}")

    t0 = time.time()
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}                  # terms may be absent in some steps (no labelled image)
    last_valid: dict[str, Any] = {}
    bar = tqdm(total=cfg.train.steps, initial=start, disable=None if progress is None else not progress,
               desc=f"{cfg.method}", dynamic_ncols=True)
    guard = FaultGuard(cfg, method, paths.last)           # reliab hook: rollback after repeated skips
    stop = StopRequest().install()                        # reliab hook: SIGTERM/SIGINT -> checkpoint, exit
    try:
        for step in range(start, cfg.train.steps):
            ctx.step = step
            batches = {name: next(s).to(device, non_blocking=True) for name, s in streams.items()}
            method.set_training(True)
            logs: dict[str, torch.Tensor] = {}
            for step_fn in method.steps:
                logs |= step_fn(method, batches, ctx)
            guard.after_step(step, ctx)                   # reliab hook
            for key, value in logs.items():     # summed on device: no host sync per step
                sums[key] = sums.get(key, 0) + value.detach().float()
                counts[key] = counts.get(key, 0) + 1
            done = step + 1
            bar.update(1)

            if done % cfg.train.log_every == 0 or done == cfg.train.steps:
                ctx.check_pending()
                means = {k: float(v) / counts[k] for k, v in sums.items()}
                logger.scalars(done, "train", means | {"skipped_updates": ctx.skipped})
                bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in list(means.items())[:4]})
                sums, counts = {}, {}

            if done % cfg.train.eval_every == 0 or done == cfg.train.steps:
                method.set_training(False)
                with torch.no_grad():
                    last_valid = data.evaluate(method.segment, data.split("valid"), cfg, device)
                logger.scalars(done, "valid", last_valid)
                flat = flatten_scalars(last_valid)
                metric = cfg.train.select_metric
                metric = f"{metric}/mean" if metric not in flat and f"{metric}/mean" in flat else metric
                if metric not in flat:
                    raise WeaksegError(f"train.select_metric={cfg.train.select_metric!r} is not a validation metric; "
                                       f"choose one of {', '.join(flat)}")
                value = flat[metric]
                if _better(value, best, cfg.train.select_mode):
                    best = {"metric": cfg.train.select_metric, "value": value, "step": done}
                    ctx.check_pending()
                    save_checkpoint(_state(method, streams, ctx, cfg, done, best), paths.best)
                    logger.info(f"step {done}: new best {cfg.train.select_metric}={value:.4f}")

            if done % cfg.train.checkpoint_every == 0 or done == cfg.train.steps:
                ctx.check_pending()
                save_checkpoint(_state(method, streams, ctx, cfg, done, best), paths.last)

            if stop.requested:                            # reliab hook: after the step's eval/checkpoint
                ctx.check_pending()
                stop.stop(done, lambda: save_checkpoint(_state(method, streams, ctx, cfg, done, best), paths.last))
    finally:
        stop.restore()                                    # reliab hook
        bar.close()
        wall = time.time() - t0
        logger.info(f"stopped after {wall:.1f} s")
        logger.close()
    if best is None and not paths.best.exists() and paths.last.exists():
        # No finite validation value ever: best is the last state, said so in the summary.
        save_checkpoint(_state(method, streams, ctx, cfg, cfg.train.steps, None), paths.best)
    return {"steps": cfg.train.steps, "start_step": start, "best": best, "wall_time_s": wall,
            "valid": last_valid, "device": str(device), "parameters": n_params}
