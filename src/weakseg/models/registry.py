"""Model registry: configs name networks by string, `create_model` builds them.

Every registered builder takes plain keyword arguments (int, float, str, bool, list), so a checkpoint can
store ``{"name": ..., "kwargs": {...}}`` and rebuild the network before loading weights (style.md §3.5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from weakseg.errors import WeaksegError

_MODELS: dict[str, Callable[..., nn.Module]] = {}

B = TypeVar("B", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[B], B]:
    """Decorator registering a model class or builder under ``name``.

    Registering the same name twice with a different builder is a programming error and raises.
    """

    def decorator(builder: B) -> B:
        if name in _MODELS and _MODELS[name] is not builder:
            raise ValueError(f"model name {name!r} is already registered by {_MODELS[name]!r}")
        _MODELS[name] = builder
        return builder

    return decorator


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword arguments ``kwargs``."""
    if name not in _MODELS:
        raise WeaksegError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    return _MODELS[name](**kwargs)


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODELS)
