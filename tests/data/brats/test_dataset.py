"""BratsSliceSet reading a converted dataset: statuses, pools, batches, P/A vs every row."""

from __future__ import annotations

import numpy as np
import torch

from weakseg.data.brats.dataset import BratsSliceSet
from weakseg.data.brats.preprocess import KIND_A, KIND_OTHER, KIND_P
from weakseg.data.datasets import SampleSet
from weakseg.data.samplers import pool_indices
from weakseg.data.status import ABSENT, MASK, PRESENT


def test_slice_set_statuses_and_batches(converted):
    root, _, report = converted
    tr = BratsSliceSet(root / "out", "train")
    assert isinstance(tr, SampleSet) and tr.in_channels == 4 and tr.class_names == ("tumour",)
    status = tr.status[:, 0]
    kind, lab = torch.from_numpy(tr.kind), torch.from_numpy(tr.labelled)
    assert ((kind == KIND_A) == (status == ABSENT)).all()
    assert (status[(kind == KIND_P) & lab] == MASK).all() and (status[(kind == KIND_P) & ~lab] == PRESENT).all()
    assert int((status == MASK).sum()) == report["splits"]["train"]["labelled_p"]
    assert (tr.has_mask == (status == MASK)).all() and tr.mask_nonempty[:, 0].equal(tr.has_mask)
    assert len(pool_indices(tr, "labelled")) == report["splits"]["train"]["labelled_p"]
    assert len(pool_indices(tr, "p")) == report["splits"]["train"]["p"]
    assert len(pool_indices(tr, "a")) == report["splits"]["train"]["a"]

    present = pool_indices(tr, "unlabelled_p")[:2]
    masked = pool_indices(tr, "labelled")[:2]
    idx = torch.cat([present, masked]).flip(0)
    b = tr.batch(idx)
    assert b.image.dtype == torch.float32 and b.image.shape == (4, 4, 24, 12)
    assert b.index.tolist() == idx.tolist() and b.case_ids[0] == tr.case_id(int(idx[0]))
    np.testing.assert_array_equal(b.image.numpy(), tr.images_at(idx.numpy()))
    assert b.mask[2:].sum() == 0                                          # unlabelled P: mask hidden
    assert (b.mask[:2].flatten(1).sum(1) > 0).all()                       # labelled P: mask given
    assert b.image.abs().max() <= 1.0


def test_valid_set_pa_and_all(converted):
    root, _, report = converted
    pa = BratsSliceSet(root / "out", "valid")
    full = BratsSliceSet(root / "out", "valid", include="all")
    c = report["splits"]["valid"]
    assert len(pa) == c["p"] + c["a"] and len(full) == c["rows"]
    assert (pa.status[pa.kind == KIND_P, 0] == MASK).all() and (pa.status[pa.kind == KIND_A, 0] == ABSENT).all()
    assert (full.status[full.kind == KIND_OTHER, 0] == MASK).all()
