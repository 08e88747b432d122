"""RenderScheduler with the tiny model: a 1,000-change storm ends on the newest state, renders only that;
plans grow linearly with the knob count."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.engine_link.client import InProcessClient
from steerbridge.bridge.engine_link.jobs import render_job_for
from steerbridge.bridge.live.cache import LoopCache, loop_key
from steerbridge.bridge.live.scheduler import LoopReady, RenderScheduler
from steerbridge.bridge.presets.model import load_preset, save_preset

DEMO = Path(__file__).resolve().parent.parent / "presets" / "tiny.toml"


@pytest.fixture(scope="module")
def client():
    c = InProcessClient("tiny")
    c.start()
    yield c
    c.close()


@pytest.fixture()
def short_preset(tmp_path: Path):
    """The demo preset with 0.25 s loops and 2 steps (saved elsewhere: vector paths are re-based)."""
    demo = load_preset(DEMO)
    preset = replace(demo, model=replace(demo.model, steps=2), scene=replace(demo.scene, seconds=0.25))
    return save_preset(preset, tmp_path / "short.toml")


def run(state, client, **options):
    loops: list[LoopReady] = []
    sched = RenderScheduler(state, client, LoopCache(max_mb=64), on_loop=loops.append, **options)
    sched.start()
    return sched, loops


def test_storm_of_1000_changes_renders_only_the_newest_state(short_preset, client) -> None:
    state = ControlState(short_preset)
    sched, loops = run(state, client, grid="none")
    try:
        assert sched.wait_idle(timeout=120)
        before = sched.stats()
        assert before.completed == 1 and loops[-1].exact
        for i in range(1000):
            state.set_value("mood", i / 999 * 0.9)
            state.set_value("tempo", 1.0 - i / 999)
        final = state.snapshot()
        assert sched.wait_idle(timeout=120)
        after = sched.stats()
        assert after.completed - before.completed == 1  # one render for the whole storm
        assert after.submitted - before.submitted <= 3  # settled: at most a couple started and cancelled
        last = loops[-1]
        expected = loop_key(render_job_for(short_preset, final.alphas()), fingerprint=client.info.fingerprint)
        assert last.exact and last.key == expected and last.alphas == final.alphas()
        assert dict(last.alphas) == {"mood": pytest.approx(3.2), "tempo": -4.0, "brightness": 0.0}
    finally:
        sched.stop()


def test_plan_is_linear_in_knobs_exact_then_neighbours_then_axes(short_preset, client) -> None:
    state = ControlState(short_preset)
    sched = RenderScheduler(state, client, LoopCache(max_mb=64), grid="full", grid_limit=100)
    state.set_value("mood", 0.3)  # between stops 1 (0.25) and 2 (0.5) of 5
    plan = sched.plan(state.snapshot())
    assert plan[0].exact and plan[0].stops is None
    # the moved knob's neighbours first, along its own axis: tempo stays on stop 1, brightness on stop 0
    assert [p.stops for p in plan[1:3]] == [(1, 1, 0), (2, 1, 0)]
    now = state.snapshot().alphas()
    for p in plan[1:]:  # every other point moves one knob only: axes, never the corners of a grid cell
        assert sum(1 for name in now if p.alphas[name] != now[name]) == 1
    brightness = short_preset.knobs[2].stops
    assert len(plan) == 1 + 5 + (3 - 1) + (brightness - 1)  # 1 + sum(stops) less the stops we sit on
    assert len({p.key for p in plan}) == len(plan)
    near = RenderScheduler(state, client, LoopCache(max_mb=64), grid="near").plan(state.snapshot())
    # neighbours: mood's two, tempo's two (it sits on stop 1), brightness's one (it sits on stop 0)
    assert [p.point for p in near] == [p.point for p in plan[:6]]
    sched.stop()


def test_the_scenes_tempo_reaches_every_planned_job(short_preset, client) -> None:
    state = ControlState(short_preset)
    sched = RenderScheduler(state, client, LoopCache(max_mb=64), grid="near")
    before = {p.key for p in sched.plan(state.snapshot())}
    state.set_bpm(132.0)  # OSC /steer/bpm, or Link's tempo
    plan = sched.plan(state.snapshot())
    assert plan and all(p.job.bpm == 132.0 for p in plan)
    assert before.isdisjoint(p.key for p in plan)  # another tempo is another loop
    sched.stop()


def test_grid_loops_are_aligned_and_cached(short_preset, client) -> None:
    one_knob = replace(short_preset, knobs=short_preset.knobs[:1])
    state = ControlState(one_knob)
    sched, loops = run(state, client, grid="full")
    try:
        assert sched.wait_idle(timeout=240)
        stats = sched.stats()
        # exact (mood 0.5 is stop 2, so the exact render IS that stop) + the other 4 stops
        assert stats.completed == 5 and len({l.key for l in loops}) == 5
        by_stop = {l.stops: l for l in loops}
        assert by_stop[(2,)].exact and by_stop[(2,)].alphas == {"mood": 0.0}
        assert all(l.audio.shape == loops[0].audio.shape for l in loops)
        state.set_value("mood", 1.0)  # lands on stop 4: served from the cache, no render
        assert sched.wait_idle(timeout=60)
        assert sched.stats().completed == 5 and sched.stats().cache_hits >= 1
        assert loops[-1].exact and loops[-1].from_cache and loops[-1].stops == (4,)
        assert np.array_equal(loops[-1].audio, by_stop[(4,)].audio)
    finally:
        sched.stop()
