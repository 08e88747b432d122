"""Engine faults: SIGKILL mid-render, out of memory, a bad vector file; the session keeps playing.

The worker is the real spawned engine process with the tiny model. Memory
exhaustion is real too: the test lowers the worker's address-space limit
(``prlimit``, soft limit only) so that the next render's allocations fail
inside torch, then raises it back. tests/test_client.py covers one kill with
one queued job; these cover several, poison jobs, OOM and the whole session.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

from steerbridge.bridge.engine_link.client import EngineJobError, WorkerClient
from steerbridge.bridge.engine_link.jobs import JobFailed, Progress, RenderJob, VectorTerm, WorkerEvent

PRESETS = Path(__file__).resolve().parent.parent / "presets"
pytestmark = pytest.mark.slow


def short(alpha: float = 0.0, **changes: object) -> RenderJob:
    terms = (VectorTerm(path=str(PRESETS / "vectors" / "tiny" / "mood.safetensors"), alpha=alpha),) if alpha else ()
    return RenderJob(**{"prompt": "fault test", "seed": 3, "seconds": 0.5, "steps": 3, "terms": terms, **changes})


@pytest.fixture(scope="module")
def worker():
    client = WorkerClient("tiny")
    client.start(timeout=300)
    yield client
    client.close()


def wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def kill_when_rendering(client: WorkerClient, job_id: int) -> int:
    """SIGKILL the worker once it reports progress on ``job_id``; returns the killed pid."""
    started = threading.Event()
    remove = client.add_listener(lambda e: started.set() if isinstance(e, Progress) and e.job_id == job_id else None)
    try:
        assert started.wait(120), "the render never started"
    finally:
        remove()
    pid = client.pid
    os.kill(pid, signal.SIGKILL)
    return pid


def test_out_of_memory_in_a_render_is_reported_and_the_worker_keeps_serving(worker: WorkerClient) -> None:
    pid, restarts = worker.pid, worker.restarts
    status = Path(f"/proc/{pid}/status").read_text()
    vm = int(next(line for line in status.splitlines() if line.startswith("VmSize")).split()[1]) * 1024
    soft, hard = resource.prlimit(pid, resource.RLIMIT_AS)
    resource.prlimit(pid, resource.RLIMIT_AS, (vm + 64_000_000, hard))  # 64 MB more than it has now
    try:
        ticket = worker.submit(short(seconds=60.0, steps=2))  # needs far more than 64 MB
        with pytest.raises(EngineJobError) as info:
            ticket.future.result(timeout=120)
    finally:
        resource.prlimit(pid, resource.RLIMIT_AS, (soft, hard))
    assert info.value.kind == "OutOfMemory" and "the engine is still up" in str(info.value)
    out = worker.submit(short()).future.result(timeout=120)  # the same process renders the next job
    assert out.results[0].audio.shape[1] == 8000 and worker.pid == pid and worker.restarts == restarts


def test_a_bad_vector_file_fails_the_job_not_the_worker(worker: WorkerClient, tmp_path: Path) -> None:
    pid = worker.pid
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes((PRESETS / "vectors" / "tiny" / "mood.safetensors").read_bytes()[:100])
    events: list[object] = []
    remove = worker.add_listener(events.append)
    try:
        with pytest.raises(EngineJobError) as info:
            worker.submit(short(terms=(VectorTerm(path=str(bad), alpha=1.0),))).future.result(timeout=120)
        assert worker.submit(short()).future.result(timeout=120).results
    finally:
        remove()
    assert info.value.kind == "VectorFileError" and str(bad) in str(info.value)
    assert [e.kind for e in events if isinstance(e, JobFailed)] == ["VectorFileError"] and worker.pid == pid


def test_sigkill_mid_render_requeues_every_pending_render(worker: WorkerClient) -> None:
    restarts = worker.restarts
    events: list[object] = []
    remove = worker.add_listener(events.append)
    order: list[int] = []
    try:
        victim = worker.submit(short(seconds=1.0, steps=20))
        queued = [worker.submit(short(alpha=a)) for a in (-2.0, 1.0, 3.0)]
        for t in (victim, *queued):
            t.future.add_done_callback(lambda _f, t=t: order.append(t.id))
        old = kill_when_rendering(worker, victim.id)
        outs = [t.future.result(timeout=300) for t in (victim, *queued)]
    finally:
        remove()
    assert worker.pid != old and worker.restarts == restarts + 1 and worker.status().alive
    assert order == [victim.id] + [t.id for t in queued]  # the killed job first again, then the queue in order
    assert outs[0].results[0].audio.shape == (2, 16000)
    kinds = [e.kind for e in events if isinstance(e, WorkerEvent)]
    assert kinds == ["died", "restarted"] and f"while running job {victim.id}" in next(
        e.detail for e in events if isinstance(e, WorkerEvent))
    again = worker.submit(short(alpha=1.0)).future.result(timeout=120)  # the reloaded model renders the same bits
    assert np.array_equal(again.results[0].audio, outs[2].results[0].audio)


def test_a_job_that_kills_the_worker_every_time_fails_after_two_attempts(worker: WorkerClient) -> None:
    restarts = worker.restarts
    poison = worker.submit(short(seconds=1.0, steps=20, seed=99))
    after = worker.submit(short())
    kill_when_rendering(worker, poison.id)
    assert wait(lambda: worker.restarts == restarts + 1, 300)
    kill_when_rendering(worker, poison.id)  # re-queued once, killed again
    with pytest.raises(EngineJobError) as info:
        poison.future.result(timeout=300)
    assert info.value.kind == "WorkerDied" and "2 times; not retrying it" in str(info.value)
    assert after.future.result(timeout=300).results and worker.restarts == restarts + 2


# --- the whole session: audio keeps playing through a worker death ---------------------
SESSION_PRESET = """\
[model]
source = "tiny"
steps = 4

[scene]
prompt = "fault test loop"
seed = 5
seconds = 1.0

[[knob]]
name = "mood"
vector = "vectors/tiny/mood.safetensors"
alpha_min = -2.0
alpha_max = 2.0
default = 0.5
stops = 3
"""


def test_session_keeps_playing_cached_loops_while_the_worker_restarts(tmp_path: Path) -> None:
    import shutil

    from steerbridge.bridge.live.session import Session, SessionOptions

    shutil.copytree(PRESETS / "vectors", tmp_path / "vectors")
    (tmp_path / "p.toml").write_text(SESSION_PRESET)
    options = SessionOptions(output="null", osc="127.0.0.1:0", midi=None, engine="worker", grid="near",
                             progress=False, engine_nice=None)
    session = Session(tmp_path / "p.toml", options=options, say=lambda _m: None)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(0.5)
    try:
        session.start(timeout=300)
        host, port = session.surfaces.osc.address
        peer.sendto(build_msg("/steer/subscribe", []).dgram, (host, port))
        client = session.client
        assert isinstance(client, WorkerClient)
        underruns = session.player.stats().underruns
        completed = session.scheduler.stats().completed
        session.set_knob("mood", 0.8)  # between cached stops: the exact render goes to the worker ...
        assert wait(lambda: client.status().running is not None, 60)
        old_pid = client.pid
        os.kill(old_pid, signal.SIGKILL)  # ... which dies in the middle of it
        blocks = session.player.stats().blocks
        error = None
        deadline = time.monotonic() + 60
        while error is None and time.monotonic() < deadline:
            try:
                msg = OscMessage(peer.recv(65536))
            except socket.timeout:
                continue
            if msg.address == "/steer/error" and msg.params[0] == "engine":
                error = msg
        assert error is not None and f"pid {old_pid}" in error.params[1]  # OSC subscribers hear about it
        assert wait(lambda: client.restarts == 1 and client.status().alive, 300)
        assert session.player.stats().blocks > blocks  # the clock kept pulling audio during the restart
        assert wait(lambda: session.scheduler.stats().completed > completed, 300)  # the exact render re-ran
        assert session.player.stats().underruns == underruns  # nothing went silent: cached stops played
    finally:
        peer.close()
        session.close()
