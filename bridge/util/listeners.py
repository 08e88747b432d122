"""A copy-on-write list of callbacks: added and removed under a lock, called without one.

The state, the engine client and the session all notify listeners from their
own threads; iterating over an immutable snapshot means a listener may add or
remove listeners (or block briefly) without deadlocking the notifier.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["Listeners"]

T = TypeVar("T")


class Listeners(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: tuple[Callable[[T], None], ...] = ()

    def add(self, listener: Callable[[T], None]) -> Callable[[], None]:
        """Register ``listener``; returns a function that removes it again."""
        with self._lock:
            self._items = (*self._items, listener)

        def remove() -> None:
            with self._lock:
                self._items = tuple(x for x in self._items if x is not listener)

        return remove

    def __iter__(self) -> Iterator[Callable[[T], None]]:
        return iter(self._items)  # NB: reading the tuple reference is atomic

    def __len__(self) -> int:
        return len(self._items)
