from __future__ import annotations

import pytest
import torch

from weakseg.data.batch import Sample, collate_samples
from weakseg.data.status import ABSENT, MASK, PRESENT, STATUSES, UNKNOWN, encode_statuses
from weakseg.errors import WeaksegError


def test_status_codes_round_trip_and_errors() -> None:
    codes = encode_statuses(["mask", "present", "absent", "unknown"])
    assert codes.tolist() == [MASK, PRESENT, ABSENT, UNKNOWN] and codes.dtype == torch.int8
    assert [STATUSES[int(c)] for c in codes] == ["mask", "present", "absent", "unknown"]
    with pytest.raises(WeaksegError, match="'masked'.*mask, present, absent, unknown"):
        encode_statuses(["masked"], where="case abd_0001, class liver")


def test_collate_mixes_masked_and_unmasked_samples() -> None:
    m = torch.zeros(2, 8, 8, dtype=torch.uint8)
    m[1, 2:4, 2:4] = 1
    samples = [
        Sample(torch.rand(1, 8, 8), encode_statuses(["mask", "unknown"]), m, "a"),
        Sample(torch.rand(1, 8, 8), encode_statuses(["present", "absent"]), None, "b"),
    ]
    batch = collate_samples(samples)
    assert batch.image.shape == (2, 1, 8, 8) and batch.mask.shape == (2, 2, 8, 8)
    assert batch.has_mask.tolist() == [True, False]
    assert batch.mask[1].sum() == 0 and torch.equal(batch.mask[0], m)
    assert batch.class_has_mask.tolist() == [[True, False], [False, False]]
    assert batch.case_ids == ("a", "b")
    sub = batch.select(torch.tensor([False, True]))
    assert len(sub) == 1 and sub.case_ids == ("b",)


def test_collate_rejects_mismatched_shapes() -> None:
    s1 = Sample(torch.rand(1, 8, 8), encode_statuses(["mask"]), torch.zeros(1, 8, 8, dtype=torch.uint8))
    s2 = Sample(torch.rand(1, 9, 8), encode_statuses(["mask"]), None, "odd")
    with pytest.raises(ValueError, match="sample 1 \\(odd\\)"):
        collate_samples([s1, s2])


def test_host_copies_of_the_flags_follow_the_batch() -> None:
    from weakseg.data.mixing import concat_batches

    samples = [Sample(torch.rand(1, 8, 8), encode_statuses(["mask"]), torch.ones(1, 8, 8, dtype=torch.uint8), "a"),
               Sample(torch.rand(1, 8, 8), encode_statuses(["present"]), None, "b")]
    batch = collate_samples(samples)
    assert batch.host_status is None and batch.host_flags()[0] is batch.status     # a CPU batch reads itself
    moved = batch.to("cpu")                                                         # what the loop does per step
    assert moved.host_status is batch.status and moved.host_has_mask is batch.has_mask
    both = concat_batches(moved, moved)
    assert both.host_status.tolist() == [[MASK], [PRESENT]] * 2
    assert both.host_has_mask.tolist() == [True, False, True, False]
    kept = both.select(torch.tensor([False, True, True, False]))
    assert kept.host_status.tolist() == [[PRESENT], [MASK]] and kept.host_has_mask.tolist() == [False, True]
