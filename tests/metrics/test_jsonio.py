from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from weakseg.metrics.jsonio import atomic_write_json, json_safe


def _no_constants(name: str) -> float:
    raise AssertionError(f"invalid JSON constant {name}")


def test_json_safe_converts_nan_inf_and_array_types() -> None:
    obj = {"a": math.nan, "b": [1.0, math.inf, -math.inf], 3: (np.float32(0.5), np.int64(7)),
           "t": torch.tensor([1.0, float("nan")]), "n": np.array([[np.nan, 2.0]]), "s": "x", "none": None}
    got = json_safe(obj)
    assert got == {"a": None, "b": [1.0, None, None], "3": [0.5, 7], "t": [1.0, None], "n": [[None, 2.0]],
                   "s": "x", "none": None}
    assert isinstance(got["3"][1], int)


def test_atomic_write_round_trips_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.json"
    atomic_write_json(path, {"dice": float("nan"), "ok": 1.0})
    assert json.loads(path.read_text(), parse_constant=_no_constants) == {"dice": None, "ok": 1.0}
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
