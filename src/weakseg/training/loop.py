"""``fit``: the only training loop. Methods plug in step functions; the loop owns everything else.

It seeds, builds data and method, draws one batch per stream, runs the method's step functions, logs,
evaluates on the validation split, keeps ``best.pt`` on the selection metric and ``last.pt`` every
``train.checkpoint_every`` steps, and resumes exactly from ``last.pt``. A new run may start from another
run's weights (``train.init_from``): loading files belongs here, beside resume, so that method builders
stay free of side effects and a finished run rebuilds from its own checkpoint alone.

Under ``torchrun`` (``weakseg.training.distributed``) every rank runs this loop on its share of each global
batch; rank 0 alone writes the run folder, logs, shows the progress bar, evaluates and checkpoints.
Speed switches (``train.compile``, ``train.channels_last``, ``data.on_device``, ``train.pin_memory``) are
applied here, so methods never see them. Nothing in the step reads a GPU value on the host: loss sums stay
on the device and are read every ``train.log_every`` steps.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from weakseg.config.choices import choice_problems
from weakseg.config.io import ConfigProblems, diff_configs, dump_yaml, to_dict, upgrade_stored_config
from weakseg.config.schema import Config
from weakseg.data.augment import build_augment
from weakseg.data.batch import Batch
from weakseg.data.datasets import TensorSampleSet
from weakseg.data.mixing import MixedStream
from weakseg.data.registry import DataBundle, build_data
from weakseg.data.samplers import BatchStream, pool_indices
from weakseg.errors import WeaksegError
from weakseg.evaluation import evaluate, evaluate_volumes
from weakseg.methods.registry import Method, build_method
from weakseg.training.checkpoint import load_checkpoint, save_checkpoint
from weakseg.training import distributed
from weakseg.training.context import LoopContext, amp_dtype, resolve_device
from weakseg.training.distributed import World
from weakseg.training.faults import FaultGuard
from weakseg.training.logging import RunLogger, flatten_scalars
from weakseg.training.lr_schedule import LrSchedule
from weakseg.training.resume import append_history, config_changes
from weakseg.training.seed import capture_rng, restore_rng, seed_everything
from weakseg.training.progress import progress_bar
from weakseg.training.signals import StopRequest

_log = logging.getLogger("weakseg")

# Keys that may change between a run and its resumption (they do not change what is learned, beyond float
# rounding for the speed switches). The number of processes may change too: streams are world-size agnostic.
RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.eval_every", "train.checkpoint_every",
                     "train.device", "eval.batch_size", "eval.checkpoint", "train.compile", "train.compile_mode",
                     "train.compile_backend", "train.channels_last", "train.pin_memory", "data.on_device",
                     "train.nonfinite", "train.max_skipped", "train.max_rollbacks",   # the fault policy
                     "data.brats.volume_every", "data.brats.volume_patients",        # what validation scores
                     "train.init_from")                  # read at the start only; a resumed run reads last.pt
ON_DEVICE_SHARE = 0.25          # data.on_device=auto moves in-memory sets when they take < 1/4 of GPU memory


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


def build_streams(cfg: Config, data: DataBundle, method: Method, world: World | None = None) -> dict[str, BatchStream]:
    """One stream per method stream; ``train.batch_size`` is the global batch, shared out over ``world``."""
    world = world or World()
    train = method.train_split if method.train_split is not None else data.split("train")
    device = getattr(train, "device", None)
    streams = {}
    for i, (name, pool) in enumerate(sorted(method.streams.items())):
        idx = pool_indices(train, pool, class_index=cfg.data.class_index)
        seed = cfg.train.seed * 1009 + i
        shard = {"rank": world.rank, "world_size": world.world_size, "device": device}
        m = cfg.train.min_labeled_per_batch
        if m > 0 and pool in ("p", "all") and m < cfg.train.batch_size:   # oversample labelled images
            if m % world.world_size:
                raise WeaksegError(f"train.min_labeled_per_batch={m} must divide by the {world.world_size} processes "
                                   "(each takes its share of the labelled images too); use a multiple of "
                                   f"{world.world_size}")
            pool_m = cfg.train.labeled_pool
            lab = pool_indices(train, pool_m, class_index=cfg.data.class_index)
            streams[name] = MixedStream(BatchStream(train, lab, m, seed=seed + 500, name=pool_m, **shard),
                                        BatchStream(train, idx, cfg.train.batch_size - m, seed=seed, name=name,
                                                    **shard))
        else:
            streams[name] = BatchStream(train, idx, cfg.train.batch_size, seed=seed, name=name, **shard)
    return streams


def _nbytes(split: TensorSampleSet) -> int:
    return sum(t.numel() * t.element_size() for t in (split.images, split.masks))


def move_data_to_device(cfg: Config, data: DataBundle, device: torch.device) -> list[str]:
    """Move in-memory splits to the GPU once (``data.on_device``); returns the names moved.

    Sets read from disk (not ``TensorSampleSet``) stay where they are; their batches are pinned instead.
    """
    if device.type != "cuda" or cfg.data.on_device == "never":
        return []
    splits = {k: v for k, v in data.splits.items() if isinstance(v, TensorSampleSet) and v.device.type == "cpu"}
    total = sum(_nbytes(v) for v in splits.values())
    if cfg.data.on_device == "auto" and total > ON_DEVICE_SHARE * torch.cuda.get_device_properties(device).total_memory:
        _log.info(f"data.on_device=auto: the in-memory splits take {total / 2**30:.1f} GiB, more than "
                  f"{ON_DEVICE_SHARE:.0%} of the GPU; they stay on the CPU (set data.on_device=always to force)")
        return []
    for name, split in splits.items():
        data.splits[name] = split.to(device)
    return sorted(splits)


def to_channels_last(model: torch.nn.Module) -> None:
    """NHWC for 4D and NDHWC for 5D parameters and buffers, in place (``Module.to(memory_format=)`` would
    apply one format to both ranks and fail on a 3D network's 4D tensors or the reverse)."""
    for t in [*model.parameters(), *model.buffers()]:
        if t.dim() in (4, 5):
            t.data = t.data.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)


def apply_speed_switches(cfg: Config, method: Method, device: torch.device) -> list[str]:
    """channels_last and torch.compile on every model of ``method``, in place; returns what was applied.

    ``Module.compile`` compiles the module's ``__call__`` in place: ``state_dict`` keys, checkpoints and the
    method's ``segment`` (an unwrapped method such as ``gen.segment``) stay as they are. Spectral norm
    (a parametrization whose power iteration updates buffers under ``no_grad``) and the decoders' ``mode``
    argument (a Python int: one specialised graph per mode) both trace; a graph that still fails to
    compile runs eagerly (``suppress_errors``) with torch's warning, and the run goes on.
    """
    applied = []
    if cfg.train.channels_last:
        for model in method.models.values():
            to_channels_last(model)
        applied.append("channels_last")
    if cfg.train.compile:
        import torch._dynamo as dynamo

        dynamo.config.suppress_errors = True             # fall back to eager per graph instead of crashing
        try:
            for model in method.models.values():
                model.compile(mode=None if cfg.train.compile_mode == "default" else cfg.train.compile_mode,
                              backend=cfg.train.compile_backend)
            applied.append(f"compile({cfg.train.compile_backend}, {cfg.train.compile_mode})")
        except Exception as err:  # an unsupported platform raises at compile() already
            _log.warning(f"train.compile: torch.compile is unavailable here ({type(err).__name__}: {err}); "
                         "training runs eagerly")
    return applied


def _batch_to(batch: Batch, device: torch.device, *, pin: bool, channels_last: bool) -> Batch:
    """Move a batch to ``device`` without a host sync: pinned host memory makes the copy asynchronous."""
    if device.type == "cuda" and batch.image.device.type == "cpu" and pin:
        batch = replace(batch, image=batch.image.pin_memory(), status=batch.status.pin_memory(),
                        mask=batch.mask.pin_memory(), has_mask=batch.has_mask.pin_memory(),
                        index=batch.index.pin_memory())
    batch = batch.to(device, non_blocking=True)
    if channels_last and batch.image.dim() in (4, 5):
        fmt = torch.channels_last if batch.image.dim() == 4 else torch.channels_last_3d
        batch = replace(batch, image=batch.image.contiguous(memory_format=fmt))
    return batch


class _SilentLogger:
    """What ranks other than 0 log: nothing."""

    def info(self, message: str) -> None:
        pass

    def scalars(self, step: int, split: str, values: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


def _fork_rng(cfg: Config, ctx: LoopContext, world: World, start: int) -> None:
    """Give ranks > 0 their own random streams (dropout, noise); rank 0 keeps the single-process ones.

    Derived from (seed, rank, start step), so resuming with any number of processes is reproducible.
    """
    if world.rank == 0:
        return
    fork = (cfg.train.seed * 1_000_003 + world.rank * 7_919 + start) % 2**63
    seed_everything(fork)
    ctx.generator.manual_seed(fork + 1)


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


def _state(method: Method, streams: dict[str, BatchStream], ctx: LoopContext, cfg: Config,
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


def _volumes_due(data: DataBundle, cfg: Config, done: int) -> bool:
    """Volume validation at every ``volume_every``-th evaluation and at the last step."""
    every = data.volume_every
    if data.volume_scoring is None or every <= 0:
        return False
    return (done // cfg.train.eval_every) % every == 0 or done == cfg.train.steps


def _undefined(valid: dict[str, Any], name: str) -> bool:
    """True when the validation metric ``name`` is reported without a value this time (None)."""
    value = valid.get(name, 0.0)
    return (value.get("mean", 0.0) if isinstance(value, dict) else value) is None


def _better(value: float | None, best: dict[str, Any] | None, mode: str) -> bool:
    if value is None or not math.isfinite(value):
        return False
    if best is None or best.get("value") is None:
        return True
    return value > best["value"] if mode == "max" else value < best["value"]


def _load_for_resume(cfg: Config, paths: RunPaths, resume: bool) -> dict[str, Any] | None:
    """Rank 0's checks of the run folder; returns the checkpoint to resume from (or None)."""
    if resume:
        if not paths.last.is_file():
            if paths.config.is_file():       # started, then stopped before its first checkpoint: start over
                _log.info(f"--resume: {paths.root} has no checkpoint yet (stopped before step "
                          f"{cfg.train.checkpoint_every}); starting it from step 0 with its stored config")
                return None
            raise WeaksegError(f"--resume: no checkpoint at {paths.last}; start without --resume")
        ckpt = load_checkpoint(paths.last)
        stored = upgrade_stored_config(ckpt["config"])         # keys added since the run was stored
        changed = [k for k in diff_configs(stored, to_dict(cfg)) if k not in RESUMABLE_CHANGES]
        if changed:
            raise WeaksegError(f"--resume: the config differs from the run's in {', '.join(changed)}; "
                               f"only {', '.join(RESUMABLE_CHANGES)} may change (or use a new --out folder)")
        return ckpt
    if paths.last.is_file():
        raise WeaksegError(f"{paths.root} already holds a run (checkpoints/last.pt); pass --resume to continue it "
                           "or choose another --out folder")
    return None


def _on_main(world: World, fn: Any, *args: Any) -> Any:
    """Run ``fn`` on rank 0 and hand its result, or its ``WeaksegError``, to every rank."""
    result, error = None, None
    if world.is_main:
        try:
            result = fn(*args)
        except WeaksegError as err:
            if not world.enabled:
                raise
            error = err
    result, error = distributed.broadcast_object((result, error), world)
    if error is not None:
        raise error
    return result


def fit(cfg: Config, run_dir: str | Path, *, resume: bool = False, progress: bool | None = None,
        history: dict[str, Any] | None = None, data: DataBundle | None = None) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir``; returns a summary (steps, best, wall time, last validation).

    ``history``: fields added to this start's line of ``RUN/config_history.jsonl`` (e.g. the ``--set``
    list); the line always holds the event, the start step and the config keys changed since the
    checkpoint resumed from. ``data``: the ``DataBundle`` of ``cfg`` when the caller has built it already
    (SMILEr's round driver passes one whose training split carries the round's pseudo-labels); built from
    ``cfg`` when None. Launched by ``torchrun``, each process calls this with the same arguments: rank 0
    writes ``run_dir``.
    """
    paths = RunPaths(Path(run_dir))
    if problems := choice_problems(cfg):          # a config built in code skipped load_config's checks
        raise ConfigProblems(problems)
    world, device = distributed.init_distributed(resolve_device(cfg.train.device))
    try:
        return _fit(cfg, paths, world, device, resume=resume, progress=progress, history=history, data=data)
    finally:
        distributed.teardown(world)


@dataclass
class _Run:
    """One training run in progress: what ``_fit``'s steps below share."""

    cfg: Config
    paths: RunPaths
    world: World
    device: torch.device
    data: DataBundle
    method: Method
    streams: dict[str, BatchStream]
    ctx: LoopContext
    lr: LrSchedule                      # base rates read from the fresh optimisers, before any restore
    logger: RunLogger | _SilentLogger = field(default_factory=_SilentLogger)   # until the folder opens

    def save(self, path: Path, step: int, best: dict[str, Any] | None) -> None:
        if self.world.is_main:
            save_checkpoint({**_state(self.method, self.streams, self.ctx, self.cfg, step, best),
                             "data_contract": self.data.contract}, path)


@dataclass
class _Tally:
    """What the step loop accumulates between logs, evaluations and checkpoints."""

    best: dict[str, Any] | None
    reached: int
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)   # terms may be absent in some steps (no labelled image)
    last_valid: dict[str, Any] = field(default_factory=dict)


def _fit(cfg: Config, paths: RunPaths, world: World, device: torch.device, *, resume: bool,
         progress: bool | None, history: dict[str, Any] | None = None,
         data: DataBundle | None = None) -> dict[str, Any]:
    if cfg.train.batch_size % world.world_size:
        raise WeaksegError(f"train.batch_size={cfg.train.batch_size} is the global batch and must divide by the "
                           f"{world.world_size} processes; use a multiple of {world.world_size}")
    ckpt = _on_main(world, _load_for_resume, cfg, paths, resume)
    init = _init_checkpoint(cfg, paths) if ckpt is None else None     # checked before the data is built
    run, moved = _build_run(cfg, paths, world, device, data)
    start, best = _restore(run, ckpt) if ckpt is not None else (0, None)
    if init is not None:
        _init_weights(run, init)
    distributed.broadcast_parameters(run.method.models.values(), world)   # every rank starts from rank 0's weights
    _fork_rng(cfg, run.ctx, world, start)
    speed = apply_speed_switches(cfg, run.method, device)
    augment = build_augment(cfg)             # seeded per (step, stream, rank): nothing to store for resume
    run.logger = _open_run_folder(run, ckpt, start, history)
    n_params = _log_start(run, ckpt, start, moved=moved, speed=speed, augment=augment, initialised=init)
    tally, wall = _train(run, start, best, augment, progress)
    if world.is_main and tally.best is None and not paths.best.exists() and paths.last.exists():
        # No finite validation value ever: best is the last state, said so in the summary.
        run.save(paths.best, cfg.train.steps, None)
    return {"steps": cfg.train.steps, "start_step": start, "best": tally.best, "wall_time_s": wall,
            "valid": tally.last_valid, "device": str(device), "parameters": n_params,
            "world_size": world.world_size, "rank": world.rank}


def _build_run(cfg: Config, paths: RunPaths, world: World, device: torch.device,
               data: DataBundle | None) -> tuple[_Run, list[str]]:
    """Seed, data (moved to the device where asked), method, streams and step context; checks inputs."""
    seed_everything(cfg.train.seed)
    if data is None:
        data = build_data(cfg)
    else:                                   # the loop replaces splits (data.on_device): keep the caller's intact
        data = replace(data, splits=dict(data.splits))
    if cfg.train.select_metric.startswith("volume/") and data.volume_scoring is None:
        raise WeaksegError(f"train.select_metric={cfg.train.select_metric!r}: data.name={cfg.data.name!r} has no "
                           "volume validation; choose a slice metric such as dice_soft_global")
    moved = move_data_to_device(cfg, data, device)
    method = build_method(cfg, data, device)
    streams = build_streams(cfg, data, method, world)
    if world.is_main:
        check_inputs(data, streams)
    gen_device = device if device.type == "cuda" else torch.device("cpu")
    ctx = LoopContext(cfg=cfg, device=device, dtype=amp_dtype(cfg, device), world=world,
                      generator=torch.Generator(device=gen_device).manual_seed(cfg.train.seed + 7919))
    t = cfg.train
    lr = LrSchedule(method.optimizers, t.lr_schedule, t.steps, t.lr_poly_exponent)
    return _Run(cfg, paths, world, device, data, method, streams, ctx, lr), moved


def _restore(run: _Run, ckpt: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """Put the state of ``last.pt`` back (weights, optimisers, streams, random states); (start step, best)."""
    for name, sd in ckpt["models"].items():
        run.method.models[name].load_state_dict(sd)
    for name, sd in ckpt["optimizers"].items():
        run.method.optimizers[name].load_state_dict(sd)
    for name, sd in ckpt["streams"].items():
        run.streams[name].load_state_dict(sd)
    run.method.state.update(ckpt.get("method_state") or {})
    restore_rng(ckpt["rng"])
    run.ctx.generator.set_state(ckpt["generator"])
    return int(ckpt["step"]), ckpt["best"]


def _init_checkpoint(cfg: Config, paths: RunPaths) -> Path | None:
    """The checkpoint ``train.init_from`` names (a relative path is read from the run folder); None if unset."""
    if not cfg.train.init_from:
        return None
    path = Path(cfg.train.init_from)
    # lexically: the run folder itself may not exist yet, and "RUN/../x" needs it to
    path = path if path.is_absolute() else Path(os.path.normpath(paths.root / path))
    if not path.is_file():
        raise WeaksegError(f"train.init_from: {path} not found (a relative path is read from the run folder "
                           f"{paths.root}); give an existing checkpoint, e.g. OTHER_RUN/checkpoints/last.pt")
    return path


def _init_weights(run: _Run, path: Path) -> None:
    """Start a new run from the model weights in ``path`` (nothing else of that run)."""
    models = load_checkpoint(path)["models"]
    if set(models) != set(run.method.models):
        raise WeaksegError(f"train.init_from: {path} holds models {sorted(models)}, method {run.cfg.method!r} "
                           f"builds {sorted(run.method.models)}; start from a run of a method with the same models")
    for name, sd in models.items():
        try:
            run.method.models[name].load_state_dict(sd)
        except RuntimeError as err:
            raise WeaksegError(f"train.init_from: the weights of {name!r} in {path} do not fit the model built "
                               f"from this config ({str(err).splitlines()[0][:160]}); use the same model.* "
                               "settings as that run") from None


def _open_run_folder(run: _Run, ckpt: dict[str, Any] | None, start: int,
                     history: dict[str, Any] | None) -> RunLogger | _SilentLogger:
    """Rank 0 writes config.yaml and this start's history line; returns the run's logger."""
    cfg, paths = run.cfg, run.paths
    if not run.world.is_main:
        return _SilentLogger()
    paths.root.mkdir(parents=True, exist_ok=True)
    (paths.root / "checkpoints").mkdir(exist_ok=True)
    dump_yaml(cfg, paths.config)
    changes = config_changes(upgrade_stored_config(ckpt["config"]), to_dict(cfg)) if ckpt else {}
    append_history(paths.root, {"event": "resume" if ckpt else "start", "step": start,
                                "steps": cfg.train.steps, **(history or {}), "changes": changes})
    logger = RunLogger(paths.root)
    if changes:
        logger.info("resumed with changes: " + "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new)
                                                         in changes.items()))
    return logger


def _log_start(run: _Run, ckpt: dict[str, Any] | None, start: int, *, moved: list[str], speed: list[str],
               augment: Any, initialised: Path | None) -> dict[str, int]:
    """The opening lines of the log; returns the trainable parameter count per model."""
    cfg, device, world, logger = run.cfg, run.device, run.world, run.logger
    where = f"{device}" + (f" x {world.world_size} processes (global batch {cfg.train.batch_size})"
                           if world.enabled else "")
    logger.info(f"{'resuming' if ckpt else 'starting'} {cfg.method} at step {start}/{cfg.train.steps} on {where}; "
                f"data {cfg.data.name}: {run.data.info}")
    if initialised is not None:
        logger.info(f"initial weights from {initialised} (train.init_from; new optimisers)")
    n_params = {name: sum(p.numel() for p in m.parameters() if p.requires_grad)
                for name, m in run.method.models.items()}
    logger.info(f"trainable parameters: {n_params}")
    if augment is not None:
        logger.info(f"training augmentation on {device} (genseg.md §10.2): {augment.describe()}")
    if moved or speed:
        logger.info(f"speed: splits on {device}: {moved or 'none'}; {', '.join(speed) or 'eager'}; "
                    f"autocast {run.ctx.dtype or 'off'}")
    return n_params


def _validate(run: _Run, done: int, best: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Score the validation split; keep ``best.pt`` on ``train.select_metric``. Returns (metrics, best)."""
    # Rank 0 evaluates the whole validation split while the others wait: the scoring is dataset-specific
    # (it does not expose its metric counts to reduce), and one process gives exactly the single-GPU metrics.
    cfg, data, method, device, logger = run.cfg, run.data, run.method, run.device, run.logger
    method.set_training(False)
    with torch.no_grad():
        valid = evaluate(method.segment, data, data.split("valid"), cfg, device)
        if method.diagnose is not None:      # e.g. translation health: logged beside the metrics
            valid = {**valid, "translation": method.diagnose(data.split("valid"), cfg, device)}
        if _volumes_due(data, cfg, done):    # whole validation volumes, as predict would score them
            valid = {**valid, "volume": evaluate_volumes(method.segment, data, data.split("valid"), cfg, device)}
    logger.scalars(done, "valid", valid)
    flat = flatten_scalars(valid)
    metric = cfg.train.select_metric
    metric = f"{metric}/mean" if metric not in flat and f"{metric}/mean" in flat else metric
    if metric not in flat and metric.startswith("volume/") and "volume" not in valid:
        return valid, best                   # volumes are scored every data.brats.volume_every evaluations
    if metric not in flat and _undefined(valid, cfg.train.select_metric):
        # e.g. organs at a high missing rate: no organ annotated in the validation volumes. Nothing to
        # select on; best.pt follows the last checkpoint until the metric is defined.
        follow = best is None or best.get("value") is None
        logger.info(f"step {done}: {cfg.train.select_metric} is undefined on the validation split (nothing "
                    "annotated there to score); best.pt "
                    + ("follows the last checkpoint" if follow else "keeps the earlier best"))
        if follow:
            best = {"metric": cfg.train.select_metric, "value": None, "step": done}
            run.save(run.paths.best, done, best)
        return valid, best
    if metric not in flat:
        raise WeaksegError(f"train.select_metric={cfg.train.select_metric!r} is not a validation metric; "
                           f"choose one of {', '.join(flat)}")
    value = flat[metric]
    if _better(value, best, cfg.train.select_mode):
        best = {"metric": cfg.train.select_metric, "value": value, "step": done}
        run.save(run.paths.best, done, best)
        logger.info(f"step {done}: new best {cfg.train.select_metric}={value:.4f}")
    return valid, best


def _train(run: _Run, start: int, best: dict[str, Any] | None, augment: Any,
           progress: bool | None) -> tuple[_Tally, float]:
    """The step loop from ``start`` to ``train.steps``; returns the tally and the wall time."""
    cfg, world, logger = run.cfg, run.world, run.logger
    tally = _Tally(best=best, reached=start)
    t0 = time.time()
    # None: a bar on a terminal, progress lines (steps/s, ETA) in a log file; other ranks stay quiet
    bar = progress_bar(total=cfg.train.steps, initial=start, desc=cfg.method,
                       show=False if not world.is_main else progress)
    finished = False
    guard = FaultGuard(cfg, run.method, run.paths.last)   # train.nonfinite=skip: roll back after repeated skips
    stop = StopRequest().install()                        # SIGTERM/SIGINT: checkpoint, then exit
    try:
        for step in range(start, cfg.train.steps):
            logs = _train_step(run, step, augment)
            guard.after_step(step, run.ctx)
            for key, value in logs.items():     # summed on device: no host sync per step
                tally.sums[key] = tally.sums.get(key, 0) + value.detach().float()
                tally.counts[key] = tally.counts.get(key, 0) + 1
            tally.reached = step + 1
            bar.update(1)
            _after_step(run, tally, bar)
            if stop.requested:                            # after the step's evaluation and checkpoint
                run.ctx.check_pending()
                done, best_now = tally.reached, tally.best
                stop.stop(done, lambda: (run.save(run.paths.last, done, best_now), run.paths.last)[1])
        distributed.barrier(world)              # rank 0's last checkpoint is written before anyone returns
        finished = True
    finally:
        stop.restore()
        bar.close()
        wall = time.time() - t0
        # "stopped after" read like an interruption even when every step had run
        logger.info(f"finished {cfg.method}: {cfg.train.steps} steps in {wall:.1f} s" + (
            f" (resumed at step {start})" if start else "") if finished else
            f"stopped at step {tally.reached} of {cfg.train.steps} after {wall:.1f} s")
        logger.close()
    return tally, wall


def _train_step(run: _Run, step: int, augment: Any) -> dict[str, torch.Tensor]:
    """One optimiser step: a batch per stream (moved, augmented), every step function of the method."""
    cfg, device, method, ctx = run.cfg, run.device, run.method, run.ctx
    pin, channels_last = cfg.train.pin_memory, cfg.train.channels_last
    ctx.step = step
    batches = {name: _batch_to(next(s), device, pin=pin, channels_last=channels_last)
               for name, s in run.streams.items()}
    if augment is not None:             # after the move: on the GPU when training runs there
        batches = {name: _batch_to(augment(b, step=step, stream=i, rank=run.world.rank), device, pin=False,
                                   channels_last=channels_last)
                   for i, (name, b) in enumerate(batches.items())}
    method.set_training(True)
    logs: dict[str, torch.Tensor] = {}
    factor = run.lr.apply(step)
    if run.lr.active:                   # logged as the window's mean factor of the configured rates; a host
        logs["lr_factor"] = torch.tensor(factor)   # tensor: reduce_means moves it only when it logs
    for step_fn in method.steps:
        logs |= step_fn(method, batches, ctx)
    return logs


def _after_step(run: _Run, tally: _Tally, bar: Any) -> None:
    """Log, evaluate and checkpoint when their cadence (or the last step) says so."""
    cfg, ctx, done = run.cfg, run.ctx, tally.reached
    last = done == cfg.train.steps
    if done % cfg.train.log_every == 0 or last:
        ctx.check_pending()
        means = distributed.reduce_means(tally.sums, tally.counts, run.world)   # over every rank's share
        run.logger.scalars(done, "train", means | {"skipped_updates": ctx.skipped})
        bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in list(means.items())[:4]},
                        refresh=False)          # shown at the next redraw: log files get one line per 30 s
        tally.sums, tally.counts = {}, {}
    if done % cfg.train.eval_every == 0 or last:
        ctx.check_pending()
        tally.last_valid, tally.best = _on_main(run.world, _validate, run, done, tally.best)
    if done % cfg.train.checkpoint_every == 0 or last:
        ctx.check_pending()
        run.save(run.paths.last, done, tally.best)
