"""The engine side of the client seam: runs jobs against a resident model.

:class:`JobRunner` turns plain-data jobs (:mod:`steerbridge.bridge.engine_link.jobs`) into engine
calls: it loads vector files (memoised by path and mtime), builds
``engine.Steering`` and renders. It is shared by both clients: the
in-process one calls it on a thread, the worker process calls it from
:func:`worker_main`.

``engine`` (and so torch) is imported inside the functions, not at module
level: the audio process imports this module's names through
``steerbridge.bridge.engine_link.client`` and must not pay for torch unless it renders in-process.

Worker process protocol (spawned; one job at a time): the parent sends
``("job", job_id, job)``, ``("cancel", job_id)`` or ``("stop",)`` on the
request queue; the worker answers with :mod:`steerbridge.bridge.engine_link.jobs` events on the
event queue. A reader thread in the worker watches the request queue while
the main thread renders, so a cancel lands between two diffusion steps.
"""

from __future__ import annotations

import gc
import os
import queue
import signal
import threading
import traceback
from typing import Any, Callable

from steerbridge.bridge.engine_link.jobs import (Event, ExtractJob, Job, JobCancelled, JobDone, JobFailed, ModelInfo,
                                                 Progress, RenderJob, RenderResult, SweepJob, WorkerEvent)

__all__ = ["render_threads", "JobRunner", "worker_main"]

Emit = Callable[[Event], None]


class JobRunner:
    """Runs jobs on one model. Not thread-safe: one job at a time (as the model)."""

    def __init__(self, source: str, *, device: str = "cpu", backend: str = "torch", family: str | None = None) -> None:
        from steerbridge import engine
        self._engine = engine
        self.model = engine.load_model(source, device=device, backend=backend, family=family)
        self._vectors: dict[tuple[str, int], Any] = {}
        m = self.model
        self.info = ModelInfo(source=str(m.source), fingerprint=m.fingerprint, sample_rate=m.sample_rate,
                              channels=m.channels, num_layers=m.num_layers)

    def run(self, job_id: int, job: Job, *, emit: Emit, cancelled: Callable[[], bool]) -> None:
        """Run ``job``: progress and results, then exactly one JobDone, JobFailed or JobCancelled."""
        engine = self._engine
        try:
            if isinstance(job, RenderJob):
                self._render(job_id, job, 0, (0, job.steps), emit, cancelled)
            elif isinstance(job, SweepJob):
                total = sum(r.steps for r in job.renders)
                done = 0
                for index, render in enumerate(job.renders):
                    self._render(job_id, render, index, (done, total), emit, cancelled)
                    done += render.steps
            elif isinstance(job, ExtractJob):
                self._extract(job_id, job, emit)
                emit(JobDone(job_id, job.out_path))
                return
            else:
                raise TypeError(f"unknown job type {type(job).__name__}; send a RenderJob, SweepJob or ExtractJob")
            emit(JobDone(job_id))
        except engine.RenderCancelled:
            emit(JobCancelled(job_id))
        except Exception as exc:  # the worker must outlive a bad job: report it instead
            kind = type(exc).__name__
            detail = str(exc) if isinstance(exc, engine.EngineError) else f"{exc}\n{traceback.format_exc(limit=5)}"
            if _out_of_memory(exc):
                del exc  # drop the traceback's frames (and their tensors) before the next job
                gc.collect()
                kind, detail = "OutOfMemory", (f"the render ran out of memory ({kind}); the engine is still up. "
                                               "Use a shorter loop (seconds), fewer steps or knobs, or a smaller "
                                               f"model.\n{detail}")
            emit(JobFailed(job_id, detail, kind))

    def _render(self, job_id: int, job: RenderJob, index: int, offset: tuple[int, int],
                emit: Emit, cancelled: Callable[[], bool]) -> None:
        engine = self._engine
        request = engine.RenderRequest(**job.render_settings())
        steering = self.steering_for(job)
        if cancelled():
            raise engine.RenderCancelled(f"render of '{job.prompt}' cancelled before it started")
        base, total = offset
        render = self.model.render(request, steering=steering,
                                   progress=lambda done, _n: emit(Progress(job_id, base + done, total)),
                                   cancel=cancelled)
        emit(RenderResult(job_id, render.audio, render.sample_rate, render.render_s, index))

    def steering_for(self, job: RenderJob) -> Any:
        """The ``engine.Steering`` a render job asks for (None without terms): what the wrappers receive."""
        if not job.terms:
            return None
        engine = self._engine
        terms = tuple(engine.SteeringTerm(
            vector=self._vector(t.path), alpha=t.alpha, layers=t.layers, one_to_all=t.one_to_all,
            orthogonalize_against=tuple(self._vector(p) for p in t.orthogonalize_against)) for t in job.terms)
        return engine.Steering(terms=terms, cfg_mode=job.cfg_mode, start_step=job.start_step,
                               alpha_units=job.alpha_units)

    def _extract(self, job_id: int, job: ExtractJob, emit: Emit) -> None:
        engine = self._engine
        vector = engine.extract_caa(
            self.model, positive=list(job.positive), negative=list(job.negative), concept=job.concept,
            site=job.site, layers=job.layers, seed=job.seed, seconds=job.seconds, steps=job.steps,
            cfg_scale=job.cfg_scale, per_step=job.per_step, normalize=job.normalize,
            progress=lambda done, total: emit(Progress(job_id, done, total)))
        engine.save_vector(vector, job.out_path)

    def _vector(self, path: str) -> Any:
        ident = (path, os.stat(path).st_mtime_ns)  # a re-extracted file is reloaded
        if ident not in self._vectors:
            self._vectors[ident] = self._engine.load_vector(path, model=self.model)
        return self._vectors[ident]


def _out_of_memory(exc: BaseException) -> bool:
    # torch's CPU allocator raises RuntimeError("... can't allocate memory ..."), CUDA raises
    # torch.OutOfMemoryError (a RuntimeError), numpy and Python raise MemoryError.
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text))


def render_threads(requested: int | None = None) -> int:
    """Torch threads a worker renders with: ``requested``, else every core this process may run on.

    The worker is niced, so the audio process still gets the CPU it needs first;
    rendering on all cores roughly halves a render on a 2-core machine
    (benchmarks/scene_ready.py). Set explicitly so that an OMP_NUM_THREADS=1
    inherited from the shell does not silently make the live engine slower.
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"engine threads must be at least 1, not {requested}")
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_main(source: str, device: str, requests: Any, events: Any, backend: str = "torch",
                threads: int | None = None, family: str | None = None) -> None:
    """Entry point of the spawned engine process (must stay a module-level function)."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when
    # the worker stops. A lower priority keeps rendering from starving the audio
    # process for CPU (measured: it halves JACK xruns during renders), and applies
    # to every restarted worker too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(10)
    except OSError:
        pass
    try:
        if backend == "torch":
            import torch

            torch.set_num_threads(render_threads(threads))
        runner = JobRunner(source, device=device, backend=backend, family=family)
    except Exception as exc:
        events.put(WorkerEvent("failed", f"{type(exc).__name__}: {exc}"))
        return
    events.put(WorkerEvent("started", info=runner.info))
    jobs: queue.Queue[tuple[int, Job] | None] = queue.Queue()
    cancelled: set[int] = set()

    def read_requests() -> None:
        # Runs beside the render so that cancels arrive mid-render.
        while True:
            message = requests.get()
            if message[0] == "job":
                jobs.put((message[1], message[2]))
            elif message[0] == "cancel":
                cancelled.add(message[1])  # NB: set.add is atomic under the GIL
            else:
                jobs.put(None)
                return

    threading.Thread(target=read_requests, name="steerbridge-requests", daemon=True).start()
    while (item := jobs.get()) is not None:
        job_id, job = item
        runner.run(job_id, job, emit=events.put, cancelled=lambda: job_id in cancelled)
        cancelled.discard(job_id)
    events.put(WorkerEvent("stopped"))
