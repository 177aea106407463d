"""One name -> builder table, shared by the dataset, method, scoring and model registries.

A config names a builder by string; ``lookup`` returns it, or raises a ``WeaksegError`` that lists every
registered name. ``load`` imports the modules whose builders register themselves on import, at the first
look-up, so importing a package stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from weakseg.errors import WeaksegError

T = TypeVar("T")


class Registry(dict[str, T]):
    """Builders of one kind by name (a dict, name -> builder, with registration and a look-up that explains).

    ``kind`` and ``key`` word the unknown-name error: ``unknown <kind> 'x' (<key>); <available>: a, b``
    (``key`` is the config key or attribute that named it, left out when None). ``unique`` makes a second,
    different builder under a taken name a programming error (``ValueError``) instead of a replacement.
    """

    def __init__(self, kind: str, *, key: str | None = None, available: str = "available",
                 load: Callable[[], None] | None = None, unique: bool = False) -> None:
        self.kind, self.key, self.available = kind, key, available
        super().__init__()
        self._load, self._unique = load, unique

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``builder`` under ``name``."""
        def wrap(builder: T) -> T:
            if self._unique and self.get(name, builder) is not builder:
                raise ValueError(f"{self.kind} name {name!r} is already registered by {self[name]!r}")
            self[name] = builder
            return builder
        return wrap

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        if self._load is not None:
            self._load()
        return sorted(self)

    def lookup(self, name: str) -> T:
        """The builder registered under ``name``; an unknown name lists the registered ones."""
        names = self.names()
        if name not in self:
            where = f" ({self.key})" if self.key else ""
            raise WeaksegError(f"unknown {self.kind} {name!r}{where}; {self.available}: {', '.join(names)}")
        return self[name]
