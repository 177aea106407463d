from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread() -> Iterator[None]:
    # These networks run on tiny tensors; on the shared 2-core machine, intra-op threads only contend
    # (measured: the folder took 80 s with 2 threads under load and 13 s with 1).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
