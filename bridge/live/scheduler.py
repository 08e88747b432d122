"""RenderScheduler: turns control state into renders, newest state first.

One scheduler thread owns all decisions; the state's listener and the
client's completion callbacks only wake it. Each time it wakes it re-plans
from the *newest* snapshot, so a storm of knob changes collapses into one
plan (latest wins), and the running render is cancelled (between diffusion
steps) when it is no longer in the plan.

The plan for a snapshot (:func:`steerbridge.bridge.live.axes.axis_plan`), in order:

1. the exact render for the current knob values;
2. for each knob (the most recently moved first) its neighbouring stops along
   its own axis, every other knob at its current alpha: what the player
   crossfades between when that knob moves (at most ``2 * K`` renders);
3. the rest of each knob's axis, nearest stops first, at most ``grid_limit``.

A plan grows linearly with the knob count (never the ``stops ** K`` grid), and
a replan builds only points: a render's job and cache key (a JSON dump, a hash
and a stat per vector file) are made when the scheduler first reaches it.

``grid``: ``"full"`` plans all three, ``"near"`` stops after the neighbours,
``"none"`` renders only the exact loop. Finished loops go into the cache and
to ``on_loop`` (on the scheduler's or the client's thread; never audio code).
A loop is delivered once per scene (prompt, seed, length, preset); the exact
loop is delivered again whenever it becomes current again.

``settle_s``: while knob changes keep arriving less than ``settle_s`` apart,
new renders wait (up to ``settle_max_s``): a sweep starts one render, not one
per message. Stale renders are still cancelled at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from steerbridge.bridge.control.state import Change, ControlState, StateSnapshot
from steerbridge.bridge.engine_link.client import EngineClient, EngineJobError, JobCancelledError, JobOutput, Ticket
from steerbridge.bridge.engine_link.jobs import RenderJob, render_job_for
from steerbridge.bridge.live.axes import Point, axis_plan, grid_stops
from steerbridge.bridge.live.cache import LoopCache, loop_key

__all__ = ["LoopReady", "PlannedRender", "SchedulerStats", "RenderScheduler"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopReady:
    key: str  # cache key of the render
    exact: bool  # the render for the current knob values
    stops: tuple[int, ...] | None  # stop index per knob (preset order) when it is a grid point
    alphas: Mapping[str, float]
    scene: tuple[object, ...]  # identifies prompt, seed, length and the preset's render settings
    version: int  # the state version it was planned for
    audio: object  # numpy float32 [channels, samples], read-only
    sample_rate: int
    from_cache: bool


@dataclass(frozen=True)
class SchedulerStats:
    plans: int
    submitted: int
    completed: int  # renders that finished (cached)
    cancelled: int  # renders cancelled because they went stale
    failed: int
    cache_hits: int  # planned loops found in the cache
    delivered: int


class PlannedRender:
    """One render in a plan: its point, what it is for the player, and (made on first use) job and cache key."""

    __slots__ = ("point", "exact", "stops", "alphas", "scene", "_make", "_job", "_key")

    def __init__(self, point: Point, exact: bool, stops: tuple[int, ...] | None, alphas: Mapping[str, float],
                 scene: tuple[object, ...], make: Callable[[Mapping[str, float]], tuple[RenderJob, str]]) -> None:
        self.point, self.exact, self.stops, self.alphas, self.scene = point, exact, stops, alphas, scene
        self._make, self._job, self._key = make, None, None

    @property
    def job(self) -> RenderJob:
        if self._job is None:
            self._job, self._key = self._make(self.alphas)
        return self._job

    @property
    def key(self) -> str:
        if self._key is None:
            self._job, self._key = self._make(self.alphas)
        return self._key


class RenderScheduler:
    def __init__(self, state: ControlState, client: EngineClient, cache: LoopCache, *,
                 on_loop: Callable[[LoopReady], None] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 grid: str = "full", grid_limit: int = 64, settle_s: float = 0.02, settle_max_s: float = 0.25,
                 priority: int = 0) -> None:
        if grid not in ("full", "near", "none"):
            raise ValueError(f"grid={grid!r}; use 'full', 'near' or 'none'")
        self._state, self._client, self.cache = state, client, cache
        self._on_loop, self._on_error = on_loop, on_error
        self._grid, self._grid_limit = grid, grid_limit
        self._settle_s, self._settle_max_s, self._priority = settle_s, settle_max_s, priority
        self._wake = threading.Event()
        self._completions: queue.SimpleQueue[tuple[Ticket, PlannedRender]] = queue.SimpleQueue()
        self._plan: list[PlannedRender] = []
        self._plan_points: set[Point] = set()
        self._idle = threading.Condition()
        self._is_idle = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_change = self._unsettled_since = 0.0
        self._active: tuple[Ticket, PlannedRender] | None = None
        self._scene: tuple[object, ...] | None = None
        self._delivered: set[Point] = set()  # of the current scene
        self._failed: set[Point] = set()
        self._last_exact: Point | None = None
        self._counts = dict.fromkeys(SchedulerStats.__dataclass_fields__, 0)
        self._remove_listener = state.add_listener(self._on_change)

    # -- public ----------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="steerbridge-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._remove_listener()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._active is not None:
            self._client.cancel(self._active[0].id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until everything planned for the newest state is rendered (or failed)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._is_idle, timeout=timeout)

    def stats(self) -> SchedulerStats:
        return SchedulerStats(**self._counts)

    def plan(self, snap: StateSnapshot) -> list[PlannedRender]:
        """The ordered render plan for ``snap`` (see the module docstring); jobs and keys are made lazily."""
        fingerprint = self._client.info.fingerprint if self._client.info else ""
        scene = dict(prompt=snap.prompt, seed=snap.seed, seconds=snap.seconds, negative_prompt=snap.negative_prompt,
                     bpm=snap.bpm)
        scene_id = _scene_id(snap)
        preset, knobs = snap.preset, snap.preset.knobs
        names = [k.name for k in knobs]
        alphas, values = snap.alphas(), snap.values()
        index = {n: i for i, n in enumerate(names)}
        order = [index[n] for n in snap.recent() if snap.knobs[n].moved]

        def make(a: Mapping[str, float]) -> tuple[RenderJob, str]:
            job = render_job_for(preset, dict(a), **scene)
            return job, loop_key(job, fingerprint=fingerprint)

        plan = []
        for ap in axis_plan(knobs, [values[n] for n in names], [alphas[n] for n in names], order=order,
                            depth=self._grid, limit=self._grid_limit):
            a = dict(alphas)  # the real alphas, not the rounded point: the exact job is the state's
            if ap.axis is not None:
                a[names[ap.axis]] = knobs[ap.axis].stop_alphas()[ap.stop]
            plan.append(PlannedRender(ap.alphas, ap.axis is None, grid_stops(knobs, ap.alphas), a, scene_id, make))
        return plan

    def progress(self) -> tuple[int, int]:
        """``(renders done, renders planned)`` for the newest plan (done: delivered or failed)."""
        plan, done = self._plan, self._delivered | self._failed
        return sum(1 for it in plan if it.point in done), len(plan)

    # -- the scheduler thread --------------------------------------------
    def _on_change(self, change: Change) -> None:
        if change.kind in ("learn", "playing"):
            return  # nothing that changes the audio
        now = time.monotonic()
        if now - self._last_change > self._settle_s:
            self._unsettled_since = now
        self._last_change = now
        self._set_idle(False)
        self._wake.set()

    def _run(self) -> None:
        planned_version, plan = -1, []
        while not self._stop.is_set():
            self._wake.clear()
            while not self._completions.empty():
                self._finish(*self._completions.get())
            snap = self._state.snapshot()
            if snap.version != planned_version:
                plan, planned_version = self._replan(snap), snap.version
            if self._active is None and not self._settling():
                if time.monotonic() - self._last_change < self._settle_s:
                    # Forced by settle_max while changes keep arriving: the next forced start waits
                    # another settle_max, so a long sweep starts (and cancels) ~4 renders/s, not one per message.
                    self._unsettled_since = time.monotonic()
                self._advance(plan, snap)
            if self._active is None and snap.version == self._state.version and self._plan_done(plan):
                self._set_idle(True)
            self._wake.wait(timeout=self._settle_s if self._settling() else 0.5)

    def _replan(self, snap: StateSnapshot) -> list[PlannedRender]:
        self._counts["plans"] += 1
        scene = _scene_id(snap)
        if scene != self._scene:
            self._scene, self._delivered, self._failed = scene, set(), set()
        plan = self.plan(snap)
        self._plan, self._plan_points = plan, {it.point for it in plan}
        active = self._active
        if active is not None and (active[1].scene != scene or active[1].point not in self._plan_points):
            self._client.cancel(active[0].id)  # lands at the next diffusion step
            self._counts["cancelled"] += 1
            self._active = None
        exact = plan[0]
        if exact.point != self._last_exact:
            self._delivered.discard(exact.point)  # the exact loop is re-announced when it becomes current
        return plan

    def _settling(self) -> bool:
        now = time.monotonic()
        return now - self._last_change < self._settle_s and now - self._unsettled_since < self._settle_max_s

    def _advance(self, plan: list[PlannedRender], snap: StateSnapshot) -> None:
        """Deliver what the cache has, then submit the first missing render."""
        for it in plan:
            if it.point in self._failed or it.point in self._delivered:
                continue
            cached = self.cache.get(it.key)
            if cached is not None:
                self._counts["cache_hits"] += 1
                self._deliver(it, cached.audio, cached.sample_rate, snap.version, from_cache=True)
                continue
            ticket = self._client.submit(it.job, priority=self._priority)
            self._active = (ticket, it)
            self._counts["submitted"] += 1
            # The client's thread only queues the outcome; this thread handles it.
            ticket.future.add_done_callback(lambda _f, t=ticket, i=it: (self._completions.put((t, i)),
                                                                        self._wake.set()))
            return

    def _plan_done(self, plan: list[PlannedRender]) -> bool:
        # Delivered counts as done even if evicted since: a cache too small for
        # the plan must not make the scheduler re-render forever.
        return all(it.point in self._failed or it.point in self._delivered for it in plan)

    def _finish(self, ticket: Ticket, item: PlannedRender) -> None:
        if self._active is not None and self._active[0] is ticket:
            self._active = None
        try:
            output: JobOutput | None = ticket.future.result()
        except JobCancelledError:
            return
        except EngineJobError as exc:
            self._counts["failed"] += 1
            if item.scene == self._scene:
                self._failed.add(item.point)
            log.warning("render failed: %s", exc)
            if self._on_error is not None:
                self._on_error(str(exc))
            return
        if not output.results:
            return
        result = output.results[0]
        self._counts["completed"] += 1
        stored = self.cache.put(item.key, result.audio, result.sample_rate)
        # A render that finished although it went stale is kept in the cache,
        # but only announced if it still belongs to the current plan.
        if item.scene == self._scene and item.point in self._plan_points and item.point not in self._delivered:
            audio = stored.audio if stored is not None else result.audio
            self._deliver(item, audio, result.sample_rate, self._state.version, from_cache=False)

    def _deliver(self, item: PlannedRender, audio: object, rate: int, version: int, *, from_cache: bool) -> None:
        self._delivered.add(item.point)
        if item.exact:
            self._last_exact = item.point
        self._counts["delivered"] += 1
        if self._on_loop is not None:
            ready = LoopReady(item.key, item.exact, item.stops, item.alphas, item.scene, version,
                              audio, rate, from_cache)
            try:
                self._on_loop(ready)
            except Exception:
                log.exception("on_loop callback failed")

    def _set_idle(self, idle: bool) -> None:
        with self._idle:
            self._is_idle = idle
            if idle:
                self._idle.notify_all()


def _scene_id(snap: StateSnapshot) -> tuple[object, ...]:
    # Only what changes the audio or the stop grid: a new MIDI binding or OSC
    # address (a preset edit) must not re-announce every loop.
    knobs = tuple((k.name, k.vector, k.layers, k.alpha_min, k.alpha_max, k.curve, k.stops,
                   k.orthogonalize_against, k.one_to_all) for k in snap.preset.knobs)
    return (str(snap.preset.path), snap.preset.model, knobs, snap.prompt, snap.seed, snap.seconds,
            snap.negative_prompt, snap.bpm)
