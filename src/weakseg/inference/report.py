"""Run-level evaluation: load a run, score a split, write ``eval_<split>.json`` with provenance."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

import weakseg
from weakseg.evaluation import evaluate, evaluate_volumes
from weakseg.inference.load import load_run
from weakseg.metrics.jsonio import atomic_write_json


def evaluate_run(run_dir: str | Path, *, split: str = "valid", which: str = "best", device: str = "auto",
                 write: bool = True) -> dict[str, Any]:
    """Evaluate ``which`` checkpoint of a run on ``split``; returns (and writes) the report."""
    run = load_run(run_dir, which=which, device=device)
    data = run.data.split(split)
    t0 = time.time()
    with torch.no_grad():
        metrics = evaluate(run.method.segment, run.data, data, run.cfg, run.device)
        # BraTS: every patient of the split as a whole volume
        volume = evaluate_volumes(run.method.segment, run.data, data, run.cfg, run.device, max_patients=0)
        if volume is not None:
            metrics = {**metrics, "volume": volume}
    report = {
        "split": split,
        "checkpoint": which,
        "checkpoint_step": run.checkpoint.get("step"),
        "selection": run.checkpoint.get("best"),
        "method": run.cfg.method,
        "dataset": run.cfg.data.name,
        "preset": run.cfg.data.preset,
        "metrics": metrics,
        "eval_time_s": round(time.time() - t0, 3),
        "weakseg_version": weakseg.__version__,
    }
    if write:
        atomic_write_json(Path(run_dir) / f"eval_{split}.json", report)
    return report
