"""Run a grid of (preset, method, seed) trainings, one stored result per run, skipping finished ones.

A run's training folder lives under ``runs_root/<key>`` (resumed if interrupted); its result is the
small JSON ``results_dir/runs/<key with / as __>.json``, written only when the run has finished and
been evaluated. Tables are assembled from whatever results exist, so a long grid can be filled over
several sittings and on whichever machine is at hand.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weakseg.config import load_config, to_dict
from weakseg.config.io import current_key
from weakseg.metrics.jsonio import atomic_write_json
from weakseg.reproduce.provenance import provenance


@dataclass(frozen=True)
class RunSpec:
    """One training run of a reproduction grid."""

    group: str                  # table row group, e.g. a preset or an alpha
    method: str                 # table column / method key
    seed: int
    config: str                 # config path or name under configs/
    overrides: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # overrides that spell out what was the default when older results were stored: a stored result made
    # without them answers this spec too (it was trained the same way)
    former_defaults: tuple[str, ...] = field(default=(), hash=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.group}/{self.method}/seed{self.seed}"

    @property
    def file_key(self) -> str:
        return self.key.replace("/", "__")


def result_path(results_dir: Path, spec: RunSpec) -> Path:
    return results_dir / "runs" / f"{spec.file_key}.json"


def run_grid(specs: Sequence[RunSpec], *, runs_root: Path, results_dir: Path, redo: bool = False,
             evaluate: Callable[[Path, RunSpec], dict[str, Any]], command: str,
             log: Callable[[str], None] = print,
             trainer: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
    """Train and evaluate every spec not yet done; return all stored results of the grid.

    ``trainer(cfg, run_dir, resume=...)`` trains one run (default ``fit``; the organs table passes the
    CLI's ``weakseg.cli.train.train_run``, which runs SMILEr's rounds for the SMILEr methods).
    """
    from weakseg.training.checkpoint import load_checkpoint
    from weakseg.training.loop import fit

    trainer = fit if trainer is None else trainer

    results = []
    for i, spec in enumerate(specs, 1):
        out_json = result_path(results_dir, spec)
        stale = False
        if out_json.is_file() and not redo:
            stored = json.loads(out_json.read_text())
            if _same_recipe(stored, spec):
                log(f"[{i}/{len(specs)}] {spec.key}: done, skipped")
                results.append(stored)
                continue
            stale = True
            log(f"[{i}/{len(specs)}] {spec.key}: the stored result was made with other settings "
                f"({stored.get('config_file')} {_recipe(stored.get('overrides', []))}); training it again")
        cfg = load_config(spec.config, [*spec.overrides, f"train.seed={spec.seed}"])
        run_dir = runs_root / spec.key
        last = run_dir / "checkpoints" / "last.pt"
        differs = [] if redo or stale else folder_differences(run_dir, cfg)
        if differs:       # e.g. a folder trained for more steps by another grid sharing this runs root
            stale = True
            log(f"[{i}/{len(specs)}] {spec.key}: its training folder {run_dir} was made with other settings "
                f"({', '.join(differs[:4])}); training it again")
        if (redo or stale) and run_dir.exists():
            import shutil
            shutil.rmtree(run_dir)
        t0 = time.time()
        finished = last.is_file() and int(load_checkpoint(last)["step"]) >= cfg.train.steps
        if not finished:
            log(f"[{i}/{len(specs)}] {spec.key}: training {cfg.train.steps} steps -> {run_dir}")
            trainer(cfg, run_dir, resume=last.is_file())
        wall = time.time() - t0
        metrics = evaluate(run_dir, spec)
        record = {"key": spec.key, "group": spec.group, "method": spec.method, "seed": spec.seed,
                  "config_file": spec.config, "overrides": list(spec.overrides), "config": to_dict(cfg),
                  "wall_time_s": round(wall, 1), "run_dir": str(run_dir), **metrics, **spec.extra,
                  "valid_rows": read_valid_rows(run_dir), "provenance": provenance(command)}
        atomic_write_json(out_json, record)
        results.append(record)
    return results


def folder_differences(run_dir: Path, cfg: Any) -> list[str]:
    """The config keys on which the training folder ``run_dir`` (its ``config.yaml``) differs from ``cfg``,
    speed switches aside; [] when they agree or the folder holds no config yet.

    Without this check a folder trained with other settings (say 4,000 steps, where the spec asks 3,500)
    would pass as finished and its checkpoint be scored under the spec's recipe.
    """
    import yaml

    from weakseg.config.io import config_from_dict, diff_configs, upgrade_stored_config

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return []
    stored = to_dict(config_from_dict(upgrade_stored_config(yaml.safe_load(path.read_text()))))
    return [k for k in diff_configs(stored, to_dict(cfg)) if k not in SPEED_SWITCHES]


def read_valid_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The validation rows of a run's ``metrics.jsonl`` (step -> flattened metrics), oldest first.

    A step logged twice (a run resumed from an earlier checkpoint) keeps its last row. No file: no rows.
    """
    path = Path(run_dir) / "metrics.jsonl"
    rows: dict[int, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r.get("split") == "valid":
                rows[int(r["step"])] = {k: v for k, v in r.items() if k not in ("split", "time")}
    return [rows[s] for s in sorted(rows)]


def run_data_info(run_dir: Path) -> dict[str, Any] | None:
    """The data summary a run logged when it started (``log.txt``: "... data NAME: {...}"), the last one.

    For cluttered MNIST it holds the labelled canvases, the distinct labelled sources and the split sizes.
    """
    import ast

    path, found = Path(run_dir) / "log.txt", None
    if path.is_file():
        for line in path.read_text().splitlines():
            head, sep, tail = line.partition(" data ")
            if sep and ": {" in tail and ("starting" in head or "resuming" in head):
                try:
                    found = ast.literal_eval(tail.split(": ", 1)[1])   # a dict's repr of plain values
                except (ValueError, SyntaxError):
                    pass
    return found


# Speed switches change how a run executes, not what it learns (beyond float rounding; README "Performance"),
# so a stored result made with or without them answers the same recipe.
SPEED_SWITCHES = ("train.compile", "train.compile_mode", "train.compile_backend", "train.channels_last",
                  "train.pin_memory", "data.on_device")


def _recipe(overrides: Sequence[str]) -> list[str]:
    """Overrides without the machine-specific ones (values that are absolute paths: data roots, overlays) and
    without speed switches, their keys spelled as today (results stored ``train.labelled_pool``)."""
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        key = key.strip()
        if not value.startswith("/") and key not in SPEED_SWITCHES:
            out.append(o if current_key(key) == key else f"{current_key(key)}={value}")
    return out


def _same_recipe(stored: dict[str, Any], spec: RunSpec) -> bool:
    """A stored result answers ``spec`` when its config file and (path-free) overrides are the same, or the
    same but for ``spec.former_defaults`` (the result predates them and was trained as they say)."""
    if stored.get("config_file") != spec.config:
        return False
    have = _recipe(stored.get("overrides", []))
    want = _recipe(list(spec.overrides))
    return have == want or have == [o for o in want if o not in spec.former_defaults]


def load_results(results_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((results_dir / "runs").glob("*.json"))]


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}
