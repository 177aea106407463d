from __future__ import annotations

import numpy as np
import pytest
import torch

from weakseg.metrics.counts import confusion_counts, confusion_counts_numpy


def test_hand_counts_2d() -> None:
    pred = torch.tensor([[[[1, 1], [0, 0]]], [[[0, 0], [0, 0]]]], dtype=torch.bool)  # (2, 1, 2, 2)
    ref = torch.tensor([[[[1, 0], [1, 0]]], [[[0, 0], [0, 1]]]], dtype=torch.bool)
    tp, fp, fn, tn = confusion_counts(pred, ref)
    assert tp.tolist() == [[1], [0]]
    assert fp.tolist() == [[1], [0]]
    assert fn.tolist() == [[1], [1]]
    assert tn.tolist() == [[1], [3]]
    assert tp.dtype == torch.int64 and tp.shape == (2, 1)


def test_numpy_twin_matches_and_accepts_0_1_floats() -> None:
    rng = np.random.default_rng(0)
    pred = rng.random((3, 2, 8, 8, 8)) > 0.5
    ref = rng.random((3, 2, 8, 8, 8)) > 0.5
    got = confusion_counts_numpy(pred.astype(np.float32), ref.astype(np.uint8))
    want = confusion_counts(torch.from_numpy(pred), torch.from_numpy(ref))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w.numpy())
    assert sum(got)[0, 0] == 8**3


def test_probabilities_are_rejected() -> None:
    with pytest.raises(ValueError, match="threshold"):
        confusion_counts(torch.full((1, 1, 4, 4), 0.3), torch.zeros(1, 1, 4, 4))


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="same shape"):
        confusion_counts(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
