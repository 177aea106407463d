from __future__ import annotations

import pytest
import torch

from weakseg.errors import WeaksegError
from weakseg.training.checkpoint import load_checkpoint, save_checkpoint
from weakseg.training.seed import capture_rng, restore_rng


def test_round_trip_with_weights_only(tmp_path) -> None:
    path = save_checkpoint({"models": {"m": {"w": torch.ones(3)}}, "step": 5, "rng": capture_rng()},
                           tmp_path / "c" / "last.pt")
    back = load_checkpoint(path)
    assert back["step"] == 5 and back["format"] == 1 and torch.equal(back["models"]["m"]["w"], torch.ones(3))
    assert not list(path.parent.glob("*.tmp"))


def test_rng_restore_reproduces_draws() -> None:
    import random

    import numpy as np
    state = capture_rng()
    a = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_truncated_checkpoint_gives_one_line_error(tmp_path) -> None:
    path = save_checkpoint({"step": 1, "x": torch.arange(1000)}, tmp_path / "last.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeaksegError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_missing_and_foreign_checkpoints(tmp_path) -> None:
    with pytest.raises(WeaksegError, match="no checkpoint"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(WeaksegError, match="not a weakseg checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
