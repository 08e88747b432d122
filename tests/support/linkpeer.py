"""A second Link peer for tests, made with aalink directly (not with steerbridge's wrapper).

Only use it inside the loopback namespace (support/netns.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np

__all__ = ["Peer"]


class Peer:
    """An aalink ``Link`` on its own asyncio thread; ``beat_at`` reads its beat clock against perf_counter."""

    def __init__(self, tempo: float, *, quantum: float = 4.0, start_stop_sync: bool = True) -> None:
        import aalink

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-link-peer", daemon=True)
        self._thread.start()

        async def make() -> Any:
            return aalink.Link(tempo)

        self.link = asyncio.run_coroutine_threadsafe(make(), self._loop).result(timeout=10)
        self.link.quantum = quantum
        self.link.start_stop_sync_enabled = start_stop_sync
        self.link.enabled = True
        self.quantum = quantum

    def close(self) -> None:
        self.link.enabled = False
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def sample(self) -> tuple[float, float]:
        """(perf_counter instant, the peer's beat then), read between two clock reads."""
        best = (1.0, 0.0, 0.0)
        for _ in range(5):
            t0 = time.perf_counter()
            beat = float(self.link.beat)
            t1 = time.perf_counter()
            if t1 - t0 < best[0]:
                best = (t1 - t0, (t0 + t1) / 2, beat)
        return best[1], best[2]

    def timeline(self, seconds: float = 0.3, every: float = 0.01) -> tuple[float, float]:
        """(beat at perf time 0 ... as intercept, beats per second): a line fitted to ``seconds`` of samples."""
        points = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(points) < 10:  # a starved process still gets a line
            points.append(self.sample())
            time.sleep(every)
        t, b = np.array(points).T
        slope, intercept = np.polyfit(t - t[0], b, 1)
        return intercept - slope * t[0], slope
