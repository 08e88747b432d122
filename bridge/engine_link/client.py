"""EngineClient: the one seam between the bridge and a resident engine.

Two implementations share the queueing logic below:

- :class:`WorkerClient` (the default for ``serve``): the model lives in a
  *spawned* process, so the sampler's Python code, a crash or an out-of-memory
  never holds the GIL of, or kills, the audio process. If the worker dies it is
  reported, restarted, and the job it was running goes back to the queue.
- :class:`InProcessClient`: the same interface on a thread, for tests and
  tools.

Jobs are queued here, in the client, and the engine gets one at a time: the
scheduler can re-prioritise or cancel queued work up to the last moment, and a
restart only ever has one job to re-queue. Lower ``priority`` runs sooner;
ties run in submission order. ``cancel`` of a running job takes effect at the
next diffusion step.

Threads: listeners (``add_listener``) and ticket futures are called on the
client's event thread. Keep listeners short; never call them from audio code.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import multiprocessing
import queue
import threading
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from steerbridge.bridge.engine_link.jobs import (Event, Job, JobCancelled, JobDone, JobFailed, ModelInfo, RenderResult,
                                                 WorkerEvent)
from steerbridge.bridge.util.listeners import Listeners

__all__ = ["EngineClient", "InProcessClient", "WorkerClient", "Ticket", "JobOutput", "ClientStatus",
           "EngineJobError", "JobCancelledError"]

log = logging.getLogger(__name__)


class EngineJobError(RuntimeError):
    """A job failed in the engine; ``kind`` is the engine exception's class name."""

    def __init__(self, message: str, kind: str = "EngineError") -> None:
        super().__init__(message)
        self.kind = kind


class JobCancelledError(EngineJobError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} was cancelled", "RenderCancelled")


@dataclass(frozen=True)
class JobOutput:
    results: tuple[RenderResult, ...]  # one per render (a sweep has several), in order
    detail: str = ""  # an extraction: the saved vector's path


@dataclass(eq=False)
class Ticket:
    id: int
    job: Job
    priority: int
    future: Future[JobOutput] = field(default_factory=Future)
    results: list[RenderResult] = field(default_factory=list)
    attempts: int = 0  # how many times a worker died running it


@dataclass(frozen=True)
class ClientStatus:
    alive: bool
    info: ModelInfo | None
    running: int | None  # job id
    queued: int
    restarts: int


class EngineClient(ABC):
    """Submit jobs, cancel them, watch progress. Subclasses provide the engine."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heap: list[tuple[int, int, int]] = []  # (priority, seq, job id)
        self._tickets: dict[int, Ticket] = {}
        self._running: Ticket | None = None
        self._ids = itertools.count(1)
        self._listeners: Listeners[Event] = Listeners()
        self.info: ModelInfo | None = None
        self.restarts = 0

    # -- public ----------------------------------------------------------
    @abstractmethod
    def start(self, *, timeout: float = 300.0) -> ModelInfo:
        """Load the model (blocking) and return what it is."""

    @abstractmethod
    def close(self) -> None:
        """Stop the engine; queued jobs are cancelled."""

    def submit(self, job: Job, *, priority: int = 0) -> Ticket:
        with self._lock:
            ticket = Ticket(next(self._ids), job, priority)
            self._tickets[ticket.id] = ticket
            heapq.heappush(self._heap, (priority, ticket.id, ticket.id))
        self._pump()
        return ticket

    def cancel(self, job_id: int) -> None:
        """Cancel a queued job now, or a running one at its next diffusion step."""
        with self._lock:
            ticket = self._tickets.get(job_id)
            if ticket is None:
                return
            running = ticket is self._running
            if not running:
                del self._tickets[job_id]  # its heap entry is skipped when popped
        if running:
            self._send_cancel(job_id)
        else:
            self._finish(ticket, JobCancelled(job_id))

    def cancel_all(self) -> None:
        with self._lock:
            ids = list(self._tickets)
        for job_id in ids:
            self.cancel(job_id)

    def add_listener(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener(event)`` for every event; returns a function that removes it."""
        return self._listeners.add(listener)

    def status(self) -> ClientStatus:
        with self._lock:
            running = self._running.id if self._running else None
            return ClientStatus(self._alive(), self.info, running,
                                len(self._tickets) - (running is not None), self.restarts)

    # -- for subclasses --------------------------------------------------
    @abstractmethod
    def _send_job(self, ticket: Ticket) -> None: ...

    @abstractmethod
    def _send_cancel(self, job_id: int) -> None: ...

    @abstractmethod
    def _alive(self) -> bool: ...

    def _pump(self) -> None:
        """Hand the most urgent queued job to the engine if it is idle."""
        with self._lock:
            if self._running is not None or not self._alive():
                return
            while self._heap:
                _, _, job_id = heapq.heappop(self._heap)
                ticket = self._tickets.get(job_id)
                if ticket is not None:
                    self._running = ticket
                    break
            else:
                return
        self._send_job(ticket)

    def _requeue_running(self) -> Ticket | None:
        """Put the running job back at the front of its priority (after a worker death)."""
        with self._lock:
            ticket, self._running = self._running, None
            if ticket is not None:
                ticket.results.clear()
                heapq.heappush(self._heap, (ticket.priority, -ticket.id, ticket.id))
            return ticket

    def _on_event(self, event: Event) -> None:
        """Route an engine event (called on the client's event thread)."""
        ticket = self._tickets.get(getattr(event, "job_id", -1))
        if isinstance(event, RenderResult) and ticket is not None:
            ticket.results.append(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("engine client listener %r failed on %s", listener, type(event).__name__)
        if isinstance(event, (JobDone, JobFailed, JobCancelled)) and ticket is not None:
            with self._lock:
                self._tickets.pop(ticket.id, None)
                if self._running is ticket:
                    self._running = None
            self._finish(ticket, event, notify=False)
            self._pump()

    def _finish(self, ticket: Ticket, event: Event, *, notify: bool = True) -> None:
        if notify:
            for listener in self._listeners:
                listener(event)
        if ticket.future.done():
            return
        if isinstance(event, JobDone):
            ticket.future.set_result(JobOutput(tuple(ticket.results), event.detail))
        elif isinstance(event, JobFailed):
            ticket.future.set_exception(EngineJobError(event.error, event.kind))
        else:
            ticket.future.set_exception(JobCancelledError(ticket.id))


class InProcessClient(EngineClient):
    """The engine on a thread of this process (tests, tools): same interface, no isolation."""

    def __init__(self, source: str = "tiny", *, device: str = "cpu", backend: str = "torch",
                 family: str | None = None) -> None:
        super().__init__()
        self._source, self._device, self._backend, self._family = source, device, backend, family
        self._jobs: queue.Queue[Ticket | None] = queue.Queue()
        self._cancelled: set[int] = set()
        self._thread: threading.Thread | None = None

    def start(self, *, timeout: float = 300.0) -> ModelInfo:
        from steerbridge.bridge.engine_link.worker import JobRunner

        self._runner = JobRunner(self._source, device=self._device, backend=self._backend, family=self._family)
        self.info = self._runner.info
        self._thread = threading.Thread(target=self._loop, name="steerbridge-engine", daemon=True)
        self._thread.start()
        self._pump()
        return self.info

    def close(self) -> None:
        self.cancel_all()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _send_job(self, ticket: Ticket) -> None:
        self._jobs.put(ticket)

    def _send_cancel(self, job_id: int) -> None:
        self._cancelled.add(job_id)  # NB: set.add is atomic under the GIL

    def _loop(self) -> None:
        while (ticket := self._jobs.get()) is not None:
            job_id = ticket.id
            self._runner.run(job_id, ticket.job, emit=self._on_event, cancelled=lambda: job_id in self._cancelled)
            self._cancelled.discard(job_id)


class WorkerClient(EngineClient):
    """The engine in a spawned process, restarted (and its job re-queued) if it dies.

    ``max_attempts``: a job that has killed the worker this many times fails
    instead of being re-queued again (a poison job must not loop forever).
    """

    def __init__(self, source: str = "tiny", *, device: str = "cpu", backend: str = "torch",
                 max_attempts: int = 2, threads: int | None = None, family: str | None = None) -> None:
        super().__init__()
        self._source, self._device, self._max_attempts, self._family = source, device, max_attempts, family
        self._threads = threads  # torch threads in the worker (None: every core; worker.render_threads)
        self._backend = backend
        self._ctx = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._requests: Any = None
        self._events: Any = None
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, *, timeout: float = 300.0) -> ModelInfo:
        self._spawn(timeout=timeout)
        self._monitor = threading.Thread(target=self._watch, name="steerbridge-worker-events", daemon=True)
        self._monitor.start()
        self._pump()
        assert self.info is not None
        return self.info

    def close(self) -> None:
        self._stopping.set()
        self.cancel_all()
        if self._monitor is not None:
            self._monitor.join(timeout=10)
        if self._process is not None and self._process.pid is None:
            self._process = None  # never started (spawn failed): nothing to join
        if self._process is not None:
            try:
                self._requests.put(("stop",))
            except (OSError, ValueError):
                pass
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout=5)
            self._process = None

    def _spawn(self, *, timeout: float) -> None:
        from steerbridge.bridge.engine_link.worker import worker_main

        # Fresh queues for every worker: a process killed while writing to a
        # queue can leave it corrupted (multiprocessing docs, "Pipes and Queues").
        self._requests, self._events = self._ctx.Queue(), self._ctx.Queue()
        self._process = self._ctx.Process(target=worker_main, name="steerbridge-engine", daemon=True,
                                          args=(self._source, self._device, self._requests, self._events,
                                                self._backend, self._threads, self._family))
        self._process.start()
        try:
            first = self._events.get(timeout=timeout)
        except queue.Empty:
            self._process.kill()
            raise EngineJobError(f"the engine worker did not load {self._source!r} within {timeout:.0f} s; "
                                 "check the model source or raise the timeout", "Timeout") from None
        if not isinstance(first, WorkerEvent) or first.kind != "started":
            detail = first.detail if isinstance(first, WorkerEvent) else repr(first)
            raise EngineJobError(f"the engine worker could not start: {detail}", "ModelLoadError")
        self.info = first.info

    def _alive(self) -> bool:
        return self._process is not None and self._process.is_alive() and not self._stopping.is_set()

    def _send_job(self, ticket: Ticket) -> None:
        self._requests.put(("job", ticket.id, ticket.job))

    def _send_cancel(self, job_id: int) -> None:
        self._requests.put(("cancel", job_id))

    def _watch(self) -> None:
        while not self._stopping.is_set():
            try:
                event = self._events.get(timeout=0.1)
            except queue.Empty:
                if self._process is not None and not self._process.is_alive() and not self._stopping.is_set():
                    self._restart()
                continue
            self._on_event(event)

    def _restart(self) -> None:
        code = self._process.exitcode
        ticket = self._requeue_running()
        detail = f"engine worker (pid {self._process.pid}) died with exit code {code}"
        if ticket is not None:
            ticket.attempts += 1
            detail += f" while running job {ticket.id}"
        log.error("%s; restarting it", detail)
        self._on_event(WorkerEvent("died", detail))
        if ticket is not None and ticket.attempts >= self._max_attempts:
            # A poison job: fail it (its queued heap entry is skipped once the ticket is gone).
            self._on_event(JobFailed(ticket.id, f"{detail}, {ticket.attempts} times; not retrying it",
                                     "WorkerDied"))
        try:
            self._spawn(timeout=300.0)
        except EngineJobError as exc:
            log.error("could not restart the engine worker: %s", exc)
            self._on_event(WorkerEvent("failed", str(exc)))
            self._stopping.set()
            self.cancel_all()
            return
        self.restarts += 1
        self._on_event(WorkerEvent("restarted", detail, self.info))
        self._pump()
