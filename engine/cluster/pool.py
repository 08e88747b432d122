"""RenderPool: run one function over many work items on a resident model, results in item order.

Extraction, localisation and the benchmark are sweeps of independent renders (one prompt,
one counterfactual pair, one alpha). They hand those to a pool as ``pool.map(fn, items)``:
``fn(model, item)`` must be a module-level function (a worker elsewhere imports it by name)
and its result must depend on ``item`` and the model alone, never on what ran before, so
the same items give the same results whichever worker ran them. Results come back in item
order, so everything computed from them is identical to the local run.

:class:`LocalPool` is the local run: the items in order on the caller's model.
:class:`~steerbridge.engine.cluster.ray_pool.RayPool` spreads them over Ray actors that keep
one model resident each.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Callable, Sequence

__all__ = ["RenderPool", "LocalPool", "Task"]

T = tp.TypeVar("T")
R = tp.TypeVar("R")
Task = Callable[[tp.Any, T], R]


class RenderPool(tp.Protocol):
    def map(self, fn: Task, items: Sequence[T], *,
            progress: Callable[[int, int], None] | None = None) -> list[R]: ...


class LocalPool:
    """Run every item here, in order, on ``model``."""

    def __init__(self, model: tp.Any) -> None:
        self.model = model

    def map(self, fn: Task, items: Sequence[T], *,
            progress: Callable[[int, int], None] | None = None) -> list[R]:
        out = []
        for i, item in enumerate(items):
            out.append(fn(self.model, item))
            if progress is not None:
                progress(i + 1, len(items))
        return out
