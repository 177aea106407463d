"""One seeding entry point and RNG state capture for exact resume."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)   # also seeds every CUDA device


def _to_lists(obj: Any) -> Any:
    if isinstance(obj, tuple | list):
        return [_to_lists(o) for o in obj]
    return obj


def _to_tuples(obj: Any) -> Any:
    if isinstance(obj, list):
        return tuple(_to_tuples(o) for o in obj)
    return obj


def capture_rng() -> dict[str, Any]:
    """RNG states as tensors and plain lists (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _to_lists(random.getstate()),
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(_to_tuples(state["python"]))
