"""LatestWorker: one background thread that runs the newest job per key, so a control thread never waits on files.

The OSC server thread and the MIDI callback threads must stay cheap: reading
and parsing a preset, or writing a learned MIDI binding into one, can take
milliseconds to seconds on a slow or network file system. They hand such work
to a :class:`LatestWorker` and return at once. Jobs are keyed: a job submitted
while another with the same key still waits replaces it (latest wins: only the
newest preset request, or the newest set of bindings for one preset file,
matters); jobs with different keys run in submission order. A job that raises
is logged and reported through ``on_error`` (the worker keeps running).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["LatestWorker"]

log = logging.getLogger(__name__)
Job = Callable[[], object]


class LatestWorker:
    """Run submitted jobs on the ``name`` thread, newest per key; see the module docstring."""

    def __init__(self, name: str, *, on_error: Callable[[BaseException], None] | None = None) -> None:
        self.name = name
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: dict[Hashable, Job] = {}  # insertion order = run order; a resubmit keeps its place
        self._running = False
        self._stopping = False
        self.submitted = self.superseded = self.done = 0
        # Started by the first job: a server or router that never gets one leaves no thread behind.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def submit(self, job: Job, *, key: Hashable = None) -> None:
        """Queue ``job`` (replacing a waiting one with the same ``key``); returns at once."""
        with self._cond:
            if self._stopping:
                return
            self.submitted += 1
            if key in self._pending:
                self.superseded += 1
            self._pending[key] = job
            if not self._thread.is_alive() and self._thread.ident is None:
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no job waits or runs (tests, shutdown); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, *, finish: bool = True, timeout: float = 5.0) -> None:
        """Stop the thread; ``finish``: run the jobs still waiting first (a learned binding is not lost)."""
        if finish:
            self.wait_idle(timeout)
        with self._cond:
            self._stopping = True
            self._pending.clear()
            self._cond.notify_all()
        if self._thread.ident is not None and threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                key = next(iter(self._pending))
                job = self._pending.pop(key)
                self._running = True
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - a failed job is reported; the next one still runs
                log.warning("%s: a job failed: %s: %s", self.name, type(exc).__name__, exc)
                if self._on_error is not None:
                    try:
                        self._on_error(exc)
                    except Exception:  # noqa: BLE001
                        log.exception("%s: reporting a failed job failed", self.name)
            finally:
                with self._cond:
                    self._running = False
                    self.done += 1
                    self._cond.notify_all()
