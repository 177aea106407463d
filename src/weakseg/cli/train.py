"""``weakseg train CONFIG``: one run folder per run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("train", help="train a method from a YAML config",
                       description="Train a method from a YAML config into a run folder (config.yaml, "
                                   "checkpoints/last.pt and best.pt, metrics.jsonl, log.txt, tb/).")
    p.add_argument("config", help="YAML config, e.g. configs/mnist/mnist48_simple_seg_only.yaml")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder (default: runs/<config name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=200 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from weakseg.config import load_config
    from weakseg.relabel.rounds import fit_any   # fit(), or the SMILEr round driver for smiler methods

    cfg = load_config(args.config, args.overrides)
    out = args.out or Path("runs") / Path(args.config).stem
    summary = fit_any(cfg, out, resume=args.resume, progress=False if args.no_progress else None)
    if summary.get("rank", 0) == 0:      # under torchrun, rank 0 reports for every process
        print(json.dumps({"run_dir": str(out), **{k: summary[k] for k in ("steps", "best", "wall_time_s", "rounds")
                                                  if k in summary}}, default=str))
    return 0
