"""Polling helper shared by tests that wait on other threads or processes."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, *, interval: float = 0.01) -> bool:
    """True as soon as ``predicate()`` is truthy; False after ``timeout`` seconds. Use as ``assert wait_for(...)``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
