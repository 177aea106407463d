"""Model registry: configs name networks by string, `create_model` builds them.

Every registered builder takes plain keyword arguments (int, float, str, bool, list), so a checkpoint can
store ``{"name": ..., "kwargs": {...}}`` and rebuild the network before loading weights (style.md §3.5).
Registering the same name twice with a different builder is a programming error and raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from weakseg.registry import Registry

_MODELS: Registry[Callable[..., nn.Module]] = Registry("model", available="available models", unique=True)

# Decorator registering a model class or builder under a name.
register_model = _MODELS.register
# Names of all registered models, sorted.
list_models = _MODELS.names


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword arguments ``kwargs``."""
    return _MODELS.lookup(name)(**kwargs)
