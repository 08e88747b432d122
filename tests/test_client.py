"""EngineClient: in-process with the tiny model; spawned worker round trip, kill -9 -> restart + requeue."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import torch
import pytest

from steerbridge.bridge.engine_link.client import EngineJobError, InProcessClient, JobCancelledError, WorkerClient
from steerbridge.bridge.engine_link.jobs import Progress, RenderJob, SweepJob, VectorTerm, WorkerEvent, render_job_for
from steerbridge.bridge.presets.model import load_preset

DEMO = Path(__file__).resolve().parent.parent / "presets" / "tiny.toml"
SHORT = dict(seconds=0.5)


def job(**alphas: float) -> RenderJob:
    preset = load_preset(DEMO)
    base = render_job_for(preset, alphas, **SHORT)
    return RenderJob(**{**base.__dict__, "steps": 3})


@pytest.fixture(scope="module")
def inproc():
    client = InProcessClient("tiny")
    client.start()
    yield client
    client.close()


def test_in_process_render_matches_the_engine(inproc: InProcessClient, tiny) -> None:
    from steerbridge import engine
    events: list[object] = []
    remove = inproc.add_listener(events.append)
    out = inproc.submit(job(mood=2.0)).future.result(timeout=120)
    remove()
    (result,) = out.results
    assert result.audio.dtype == np.float32 and result.audio.shape[0] == inproc.info.channels
    assert result.sample_rate == inproc.info.sample_rate == tiny.sample_rate
    assert inproc.info.fingerprint == tiny.fingerprint
    # bitwise the same as calling the engine directly with the same steering
    vec = engine.load_vector(load_preset(DEMO).vector_path("mood"), model=tiny)
    direct = tiny.render(engine.RenderRequest(prompt=load_preset(DEMO).scene.prompt, seed=1234, seconds=0.5,
                                              steps=3, cfg_scale=6.0),
                         steering=engine.Steering(terms=(engine.SteeringTerm(vector=vec, alpha=2.0),)))
    assert np.array_equal(direct.audio, result.audio)
    assert [e.done for e in events if isinstance(e, Progress)] == [1, 2, 3]


def test_sweep_results_in_order_and_priorities(inproc: InProcessClient) -> None:
    order: list[int] = []
    blocker = inproc.submit(job(mood=0.5))
    low = inproc.submit(job(mood=-1.0), priority=5)
    high = inproc.submit(SweepJob((job(mood=1.0), job(mood=-1.0))), priority=1)
    for t in (blocker, low, high):
        t.future.add_done_callback(lambda f, t=t: order.append(t.id))
    sweep = high.future.result(timeout=120)
    low_out = low.future.result(timeout=120)
    assert order == [blocker.id, high.id, low.id]
    assert [r.index for r in sweep.results] == [0, 1]
    assert np.array_equal(sweep.results[1].audio, low_out.results[0].audio)  # same job, same audio
    assert not np.array_equal(sweep.results[0].audio, sweep.results[1].audio)


def test_cancel_queued_and_running(inproc: InProcessClient) -> None:
    running = inproc.submit(RenderJob(prompt="long", seconds=2.0, steps=50))
    queued = inproc.submit(job())
    inproc.cancel(queued.id)
    with pytest.raises(JobCancelledError):
        queued.future.result(timeout=5)
    inproc.cancel(running.id)
    with pytest.raises(JobCancelledError):
        running.future.result(timeout=60)
    assert inproc.status().running is None and inproc.status().queued == 0


def test_engine_errors_come_back_as_job_errors(inproc: InProcessClient, tmp_path: Path) -> None:
    bad = tmp_path / "not-a-vector.safetensors"
    bad.write_bytes(b"garbage")
    broken = RenderJob(prompt="x", seconds=0.5, steps=2,
                       terms=(VectorTerm(path=str(bad), alpha=1.0),))
    with pytest.raises(EngineJobError) as info:
        inproc.submit(broken).future.result(timeout=60)
    assert "not-a-vector" in str(info.value)
    assert inproc.submit(job()).future.result(timeout=120).results  # the engine survived


@pytest.mark.slow
def test_worker_round_trip_and_restart_after_kill(inproc: InProcessClient) -> None:
    # Same torch threads as the in-process render: a float sum split over another thread count
    # rounds differently (the worker defaults to every core, this process may run with OMP_NUM_THREADS=1).
    client = WorkerClient("tiny", threads=torch.get_num_threads())
    events: list[object] = []
    client.add_listener(events.append)
    try:
        info = client.start(timeout=180)
        assert info == inproc.info
        first = client.submit(job(mood=1.0)).future.result(timeout=120).results[0]
        expected = inproc.submit(job(mood=1.0)).future.result(timeout=120).results[0]
        assert np.array_equal(first.audio, expected.audio)  # a separate process renders the same bits
        pid = client.pid
        started = threading.Event()
        client.add_listener(lambda e: started.set() if isinstance(e, Progress) else None)
        victim = client.submit(RenderJob(prompt="long", seconds=1.0, steps=20))
        queued = client.submit(job(mood=-1.0))
        assert started.wait(60)
        os.kill(pid, signal.SIGKILL)
        victim_out = victim.future.result(timeout=240)  # re-queued and rendered by the new worker
        assert victim_out.results[0].audio.shape == (info.channels, info.sample_rate)  # 1.0 s
        assert queued.future.result(timeout=120).results
        assert client.pid != pid and client.restarts == 1 and client.status().alive
        kinds = [e.kind for e in events if isinstance(e, WorkerEvent)]
        assert kinds == ["died", "restarted"]
    finally:
        client.close()
    assert not client.status().alive


def test_extract_saves_a_vector_the_engine_loads(inproc: InProcessClient, tmp_path: Path, tiny) -> None:
    from steerbridge import engine
    from steerbridge.bridge.engine_link.jobs import ExtractJob

    out = tmp_path / "bright.safetensors"
    done = inproc.submit(ExtractJob(positive=("bright synth",), negative=("dark synth",), concept="bright",
                                    out_path=str(out), layers=(1, 2), seconds=0.25, steps=2)).future.result(120)
    assert done.detail == str(out) and done.results == ()
    vector = engine.load_vector(out, model=tiny)
    assert vector.meta.concept == "bright" and vector.layers == (1, 2)
