"""The pre-render progress bar, and keeping the engine's process behind the audio."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

from steerbridge.bridge.live.scheduler import RenderScheduler

__all__ = ["PrerenderProgress", "lower_priority"]

log = logging.getLogger(__name__)


def lower_priority(pid: int, nice: int) -> None:
    """Renice every thread of process ``pid`` (Linux nice is per thread; threads made
    later inherit it). Best effort: elsewhere, or without permission, nothing happens."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:
            log.debug("could not renice thread %d of pid %d: %s", tid, pid, exc)


class PrerenderProgress:
    """A tqdm bar (stderr) counting delivered loops while :meth:`wait` blocks.

    Off a terminal (a log file, a pipe) it prints one line when pre-rendering
    starts and one when it ends, instead of a bar redrawn into hundreds of lines.
    """

    def __init__(self, *, enabled: bool, on_tick: Callable[[int, int], None] | None = None) -> None:
        self._enabled, self._on_tick = enabled, on_tick
        self._bar: tqdm | None = None
        self._done = self._total = 0
        self._lock = threading.Lock()

    @contextmanager
    def run(self, total: int) -> Iterator[PrerenderProgress]:
        lines = self._enabled and not sys.stderr.isatty()
        bar = tqdm(total=total, desc="pre-rendering loops", unit="loop", file=sys.stderr,
                   disable=not self._enabled or lines, leave=True)
        with self._lock:
            self._bar, self._done, self._total = bar, 0, total
        t0 = time.monotonic()
        if lines:
            print(f"pre-rendering loops: {total} ...", file=sys.stderr, flush=True)
        try:
            yield self
        finally:
            with self._lock:
                self._bar = None
                done, total = self._done, self._total
            bar.close()
            if lines:
                print(f"pre-rendering loops: {done}/{total} in {time.monotonic() - t0:.1f} s", file=sys.stderr,
                      flush=True)

    def tick(self) -> None:
        with self._lock:
            bar = self._bar
            if bar is None:
                return
            self._done += 1  # counted here: a disabled tqdm does not count
            if self._done > self._total:
                self._total = bar.total = self._done  # a knob moved meanwhile: the plan grew
            bar.update(1)
            done, total = self._done, self._total
        if self._on_tick is not None:
            self._on_tick(done, total)

    @staticmethod
    def wait(scheduler: RenderScheduler, timeout: float | None) -> bool:
        """Wait for the scheduler to go idle in short slices (so Ctrl-C lands promptly)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not scheduler.wait_idle(timeout=0.2):
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True
