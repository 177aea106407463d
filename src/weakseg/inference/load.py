"""Rebuild a trained run from its folder: the checkpoint alone suffices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from weakseg.config.io import config_from_dict, upgrade_stored_config
from weakseg.config.schema import Config
from weakseg.data.registry import DataBundle, build_data
from weakseg.errors import WeaksegError
from weakseg.methods.registry import Method, build_method
from weakseg.training.checkpoint import CheckpointReadError, load_checkpoint, version_hint
from weakseg.training.context import resolve_device


@dataclass
class TrainedRun:
    cfg: Config
    data: DataBundle
    method: Method
    checkpoint: dict[str, Any]
    checkpoint_path: Path
    device: torch.device


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise WeaksegError(f"run folder {run_dir} does not exist; pass the --out folder of a weakseg train run")
    path = run_dir / "checkpoints" / f"{which}.pt"
    if not (run_dir / "checkpoints").is_dir() and not (run_dir / "config.yaml").is_file():
        holds = " (it holds YAML configs: train one first, e.g. weakseg train " \
                "configs/mnist/mnist48_simple_seg_only.yaml --out runs/mnist48_simple_seg_only)" \
            if any(run_dir.glob("*.yaml")) or any(run_dir.glob("*/*.yaml")) else ""
        raise WeaksegError(f"{run_dir}: no checkpoint {path.name}: not a run folder (no checkpoints/ inside)"
                           f"{holds}; pass the --out folder of a weakseg train run, e.g. runs/mnist48_simple_seg_only")
    if not path.is_file():
        other = run_dir / "checkpoints" / ("last.pt" if which == "best" else "best.pt")
        hint = f"; {other.name} exists: use --checkpoint {other.stem}" if other.is_file() else \
            "; train it first with weakseg train CONFIG --out " + str(run_dir)
        raise WeaksegError(f"{run_dir}: no checkpoint {path.name} in {run_dir / 'checkpoints'}{hint}")
    return path


def read_run_checkpoint(run_dir: str | Path, which: str = "best") -> tuple[Path, dict[str, Any]]:
    """(path, payload) of a run's ``best`` or ``last`` checkpoint; a damaged file names the other one's flag."""
    path = checkpoint_path(run_dir, which)
    try:
        return path, load_checkpoint(path)
    except CheckpointReadError as err:
        other = "last" if which == "best" else "best"
        try:                                   # an error path: reading the other file too costs nothing here
            load_checkpoint(path.parent / f"{other}.pt")
            fix = f"use the other checkpoint with --checkpoint {other}"
        except WeaksegError:
            fix = (f"{other}.pt is missing or damaged too: restore the files or train the run again "
                   "(weakseg train CONFIG --out RUN)")
        raise CheckpointReadError(err.path, err.reason, fix) from None


def load_run(run_dir: str | Path, *, which: str = "best", device: str = "auto",
             data: DataBundle | None = None) -> TrainedRun:
    """Config, data, method and weights of a run, in evaluation mode."""
    path, ckpt = read_run_checkpoint(run_dir, which)
    cfg = config_from_dict(upgrade_stored_config(ckpt["config"]))     # runs stored by earlier versions too
    dev = resolve_device(device)
    data = data if data is not None else build_data(cfg)
    method = build_method(cfg, data, dev)
    for name, sd in ckpt["models"].items():
        if name not in method.models:
            raise WeaksegError(f"{path}: holds model {name!r} that method {cfg.method!r} does not build; "
                               f"the checkpoint comes from another weakseg version or config{version_hint(ckpt)}")
        try:
            method.models[name].load_state_dict(sd)
        except RuntimeError as err:
            raise WeaksegError(f"{path}: weights of {name!r} do not fit the model built from its config "
                               f"({str(err).splitlines()[0][:160]}){version_hint(ckpt)}") from None
    method.state.update(ckpt.get("method_state") or {})
    method.set_training(False)
    return TrainedRun(cfg, data, method, ckpt, path, dev)
