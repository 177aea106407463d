from __future__ import annotations

import torch

from tests.toy import toy_split
from weakseg.data.mixing import MixedStream
from weakseg.data.samplers import BatchStream, pool_indices
from weakseg.data.status import MASK


def test_mixed_stream_puts_m_labelled_rows_first_and_resumes() -> None:
    data = toy_split(30, 0)
    lab, p = pool_indices(data, "labelled"), pool_indices(data, "p")
    s = MixedStream(BatchStream(data, lab, 2, seed=1), BatchStream(data, p, 5, seed=2))
    b = next(s)
    assert len(b) == 7 and b.has_mask[:2].all() and (b.status[:2, 0] == MASK).all()
    assert set(b.index[2:].tolist()) <= set(p.tolist())
    state = s.state_dict()
    nxt = next(s).index
    s.load_state_dict(state)
    assert torch.equal(next(s).index, nxt)
