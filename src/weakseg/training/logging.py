"""Run logging: ``metrics.jsonl``, TensorBoard scalars and a plain ``log.txt``."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

_log = logging.getLogger("weakseg")


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def flatten_scalars(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numbers of a (nested) metrics dict, nested keys joined by '/' (``dice_per_image/mean``)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= flatten_scalars(value, f"{prefix}{key}/")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


class RunLogger:
    """Appends one JSON object per logged step or evaluation; mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: Path, *, tensorboard: bool = True) -> None:
        self.run_dir = run_dir
        self.jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self._file_handler = logging.FileHandler(run_dir / "log.txt", encoding="utf-8")
        self._file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        _log.addHandler(self._file_handler)
        _log.setLevel(logging.INFO)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(log_dir=str(run_dir / "tb"))
            except ImportError:   # tensorboard is a declared dependency; keep training if it is broken
                _log.warning("tensorboard is not importable; scalars go to metrics.jsonl only")

    def info(self, message: str) -> None:
        _log.info(message)

    def scalars(self, step: int, split: str, values: dict[str, float]) -> None:
        values = flatten_scalars(values)
        record = {"step": step, "split": split, "time": round(time.time(), 3),
                  **{k: _finite_or_none(v) for k, v in values.items()}}
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if self.tb is not None:
            for key, value in values.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    self.tb.add_scalar(f"{split}/{key}", value, step)

    def image(self, tag: str, image: Any, step: int) -> None:
        if self.tb is not None:
            self.tb.add_image(tag, image, step, dataformats="CHW")

    def close(self) -> None:
        self.jsonl.close()
        if self.tb is not None:
            self.tb.close()
        _log.removeHandler(self._file_handler)
        self._file_handler.close()
