"""One finite check over every gradient of some optimisers, without a host sync."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def grads_finite(optimizers: Iterable[torch.optim.Optimizer]) -> Tensor:
    """A 0-d bool tensor on the parameters' device: every gradient is finite. No host sync.

    The max-abs norm (``norm_type=inf``) propagates NaN and cannot overflow the way a sum of squares can.
    """
    grads = [p.grad for opt in optimizers for group in opt.param_groups for p in group["params"]
             if p.grad is not None]
    if not grads:
        return torch.tensor(True)
    norm = torch.nn.utils.get_total_norm(grads, norm_type=float("inf"), foreach=True)
    return torch.isfinite(norm)
