"""Decoding network outputs into label maps: K-sigmoid argmax with threshold, calibration, head detection."""

from __future__ import annotations

import math

import pytest
import torch

from weakseg.errors import WeaksegError
from weakseg.evaluation.decode import calibrated_sigmoid, decode_label_map, decode_logits, head_kind


def test_decode_label_map() -> None:
    probs = torch.tensor([[[0.9, 0.2, 0.6, 0.4, 0.7],
                           [0.1, 0.3, 0.8, 0.45, 0.7]]])                       # (B=1, K=2, N=5)
    assert decode_label_map(probs).tolist() == [[1, 0, 2, 0, 1]]                 # tie 0.7/0.7 -> lower class
    assert decode_label_map(probs, threshold=0.42).tolist() == [[1, 0, 2, 2, 1]]
    assert decode_label_map(probs, mode="per_class").tolist() == [[[True, False, True, False, True],
                                                                   [False, False, True, False, True]]]
    soft = torch.tensor([[[0.5, 0.1], [0.2, 0.2], [0.3, 0.7]]])                # (B=1, K+1=3, N=2)
    assert decode_label_map(soft, mode="softmax").tolist() == [[0, 2]]
    with pytest.raises(ValueError, match="decode.mode"):
        decode_label_map(probs, mode="max")  # type: ignore[arg-type]


def test_calibrated_sigmoid_undoes_pos_weight() -> None:
    # z = log 3 with w = 3 is the BCE optimum of a true p = 1/2: calibrated 0.5, raw 0.75
    z = torch.full((1, 2, 1), math.log(3.0))
    got = calibrated_sigmoid(z, pos_weight=[3.0, 1.0])
    assert got[0, :, 0].tolist() == pytest.approx([0.5, 0.75])
    torch.testing.assert_close(calibrated_sigmoid(z), torch.sigmoid(z))
    # a class whose calibrated probability wins the argmax although its raw one does not
    z = torch.tensor([[[2.0], [3.0]]])                                                 # raw: class 2 wins
    assert decode_label_map(calibrated_sigmoid(z, pos_weight=[1.0, 30.0])).tolist() == [[1]]
    with pytest.raises(ValueError, match="pos_weight"):
        calibrated_sigmoid(z, pos_weight=[1.0, 0.0])


def test_decode_logits_reads_the_head_from_the_channel_count() -> None:
    z = torch.tensor([[[2.0, -3.0], [3.0, -3.0]]])                                  # (B=1, K=2, N=2)
    assert head_kind(2, 2) == "sigmoid" and head_kind(3, 2) == "softmax"
    assert decode_logits(z, 2).tolist() == [[2, 0]]                                 # sigmoid: 0.95 > 0.88; none
    assert decode_logits(z, 2, pos_weight=[1.0, 30.0]).tolist() == [[1, 0]]         # calibrated: class 1 wins
    soft = torch.tensor([[[0.0, 5.0], [1.0, 0.0], [2.0, 0.0]]])                    # (B=1, K+1=3, N=2)
    assert decode_logits(soft, 2).tolist() == [[2, 0]]
    with pytest.raises(WeaksegError, match="outputs 4 channels for 2 classes"):
        decode_logits(torch.zeros(1, 4, 2), 2)
