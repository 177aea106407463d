"""train a method from a YAML config

Train a method from a YAML config into a run folder (config.yaml, checkpoints/last.pt and best.pt,
metrics.jsonl, log.txt, tb/).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default=None,
                   help="YAML config, e.g. configs/mnist/mnist48_simple_seg_only.yaml (optional with --resume: "
                        "the run folder's stored config continues)")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder (default: runs/<config name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=200 (repeatable); with --resume, applied "
                        "on top of the run's stored config and recorded in RUN/config_history.jsonl")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from checkpoints/last.pt with the config stored in the run "
                        "folder (a CONFIG given too is only checked against it)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def train_run(cfg: Any, out: Path, *, resume: bool = False, progress: bool | None = None,
              history: dict[str, Any] | None = None) -> dict[str, Any]:
    """One training run: SMILEr's round driver for ``smiler``/``smiler_mc`` (its rounds keep their own
    histories), the training loop ``fit`` for every other method."""
    from weakseg.errors import WeaksegError
    from weakseg.relabel.rounds import SMILER_METHODS, fit_smiler

    if cfg.method not in SMILER_METHODS:
        from weakseg.training.loop import fit
        return fit(cfg, out, resume=resume, progress=progress, history=history)
    if cfg.smiler.round > 0:
        raise WeaksegError(f"{out} is round {cfg.smiler.round} of a SMILEr run, which trains only through its "
                           f"run: weakseg train --resume --out {Path(out).parent}")
    return fit_smiler(cfg, out, resume=resume, progress=progress)


def run(args: argparse.Namespace) -> int:
    from weakseg.config import load_config
    from weakseg.errors import WeaksegError

    if args.config is None and not args.resume:
        raise WeaksegError("train: give a CONFIG (e.g. configs/mnist/mnist48_simple_seg_only.yaml), or --resume "
                           "--out RUN to continue a stored run")
    if args.config is None and args.out is None:
        raise WeaksegError("train --resume without CONFIG: name the run to continue with --out RUN")
    out = args.out or Path("runs") / Path(args.config).stem
    if args.resume:
        from weakseg.training.loop import RESUMABLE_CHANGES
        from weakseg.training.resume import resume_config

        cfg, history = resume_config(out, args.overrides, config_file=args.config, resumable=RESUMABLE_CHANGES)
    else:
        cfg = load_config(args.config, args.overrides)
        history = {"overrides": list(args.overrides), "config_file": str(args.config)}
    summary = train_run(cfg, out, resume=args.resume, progress=False if args.no_progress else None, history=history)
    if summary.get("rank", 0) == 0:      # under torchrun, rank 0 reports for every process
        print(json.dumps({"run_dir": str(out), **{k: summary[k] for k in ("steps", "best", "wall_time_s", "rounds")
                                                  if k in summary}}, default=str))
    return 0
