from __future__ import annotations

import pytest
import torch

from tests.toy import toy_split
from weakseg.data.samplers import BatchStream, pool_indices
from weakseg.data.status import ABSENT, MASK, PRESENT
from weakseg.errors import WeaksegError


def test_pools_follow_status_only() -> None:
    data = toy_split(30, 0)
    s = data.status[:, 0]
    labelled = pool_indices(data, "labelled")
    assert all(s[i] == MASK and data.masks[i].any() for i in labelled.tolist())
    p = set(pool_indices(data, "p").tolist())
    a = set(pool_indices(data, "a").tolist())
    assert not p & a
    assert {i for i in range(30) if s[i] == ABSENT} <= a
    assert {i for i in range(30) if s[i] == PRESENT} == set(pool_indices(data, "unlabelled_p").tolist())
    assert len(pool_indices(data, "all")) == 30
    with pytest.raises(WeaksegError, match="unknown sample pool"):
        pool_indices(data, "sick")


def test_any_positive_pool_reads_only_visible_masks() -> None:
    from weakseg.data.datasets import TensorSampleSet
    from weakseg.data.status import UNKNOWN
    masks = torch.zeros(4, 2, 3, 3, dtype=torch.uint8)
    masks[0, 0, 1, 1] = 1          # visible positive of class 0
    masks[1, 1, 0, 0] = 1          # voxels of a class whose status is unknown: not a visible positive
    masks[3, 1, 2, 2] = 1          # visible positive of class 1
    status = torch.tensor([[MASK, UNKNOWN], [MASK, UNKNOWN], [MASK, MASK], [ABSENT, MASK]], dtype=torch.int8)
    data = TensorSampleSet(torch.zeros(4, 1, 3, 3), status, masks, torch.ones(4, dtype=torch.bool),
                           class_names=["a", "b"])
    assert pool_indices(data, "any_positive").tolist() == [0, 3]


def test_stream_cycles_small_pools_and_resumes_exactly() -> None:
    data = toy_split(30, 0)
    idx = pool_indices(data, "labelled")
    a = BatchStream(data, idx, 7, seed=3)
    first = [next(a).index for _ in range(3)]
    state = a.state_dict()
    rest = [next(a).index for _ in range(4)]
    b = BatchStream(data, idx, 7, seed=99)
    b.load_state_dict(state)
    assert all(torch.equal(x, next(b).index) for x in rest)
    seen = torch.cat(first + rest)
    assert set(seen.tolist()) <= set(idx.tolist()) and a.epoch >= 1


def test_empty_pool_is_a_clear_error() -> None:
    data = toy_split(6, 0)
    with pytest.raises(WeaksegError, match="pool labelled is empty"):
        BatchStream(data, torch.empty(0, dtype=torch.int64), 4, seed=0, name="labelled")


def test_device_stream_keeps_host_flags_of_the_same_rows() -> None:
    # The "meta" device stands in for a GPU: batches are indexed there, the host flags come from the CPU.
    data = toy_split(30, 0)
    idx = pool_indices(data, "p")
    on_host = BatchStream(data, idx, 5, seed=3)
    on_device = BatchStream(data.to("meta"), idx, 5, seed=3, device="meta")
    for _ in range(8):                                    # crosses an epoch boundary
        want, got = next(on_host), next(on_device)
        assert got.image.device.type == "meta"
        assert torch.equal(got.host_status, want.status) and torch.equal(got.host_has_mask, want.has_mask)
