"""Session end to end: tiny model (in-process engine), a real OSC socket, WAV output, offline clock.

One session is shared by the tests of this module (starting one loads the
model and pre-renders: seconds on these machines); the tests run in file order.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from steerbridge.bridge.audio.loops import equal_power
from steerbridge.bridge.audio.sinks import WavSink
from steerbridge.bridge.live.session import Session, SessionEvent, SessionOptions
from support.waiting import wait_for

PRESET = """\
[model]
source = "tiny"
steps = 4

[scene]
prompt = "test loop with piano"
seed = 7
seconds = 1.0

[[knob]]
name = "mood"
vector = "mood.safetensors"
alpha_min = -2.0
alpha_max = 2.0
default = 0.5
stops = 3
"""



@pytest.fixture(scope="module")
def session(tmp_path_factory, tiny_model):
    from steerbridge import engine
    folder = tmp_path_factory.mktemp("preset")
    vector = engine.extract_caa(tiny_model, positive=["happy song"], negative=["sad song"], concept="mood",
                                seconds=1.0, steps=2, normalize=True)
    engine.save_vector(vector, folder / "mood.safetensors")
    (folder / "preset.toml").write_text(PRESET)
    messages: list[str] = []
    options = SessionOptions(output="no-such-device-xyz", fallback=f"wav:{folder / 'loops'}", osc="127.0.0.1:0",
                             midi=None, engine="inprocess", grid="full", progress=False)
    s = Session(folder / "preset.toml", options=options, say=messages.append)
    events: list[SessionEvent] = []
    s.subscribe(events.append)
    s.start(timeout=240)
    s.test_messages, s.test_events, s.test_folder = messages, events, folder  # type: ignore[attr-defined]
    yield s
    s.close()


def test_missing_device_falls_back_to_wav_with_a_message(session):
    assert isinstance(session.sink, WavSink)
    assert any("no-such-device-xyz" in m and "wav:" in m for m in session.test_messages)
    assert session.status().output.startswith("WAV files in")


def test_prerender_renders_every_stop_writes_wavs_and_reports_progress(session):
    bank = session.bank.latest
    assert sorted(loop.key for loop in bank.loops()) == [(0,), (1,), (2,)]
    loops = sorted((session.test_folder / "loops").glob("*.wav"))
    assert len(loops) == 3 and all(p.name.startswith("test-loop-with-piano_s7_mood") for p in loops)
    progress = [e for e in session.test_events if e.kind == "progress" and e.message == "prerender"]
    assert [(e.done, e.total) for e in progress] == [(1, 3), (2, 3), (3, 3)]
    assert {e.path for e in session.test_events if e.kind == "loop"} == set(loops)
    audio, rate = session.current_loop_audio()
    assert rate == 48000 and audio.shape == (2, 48000)  # 1 s at the device rate (tiny renders 16 kHz)


def test_knob_move_crossfades_stops_at_once_then_the_exact_render_takes_over(session):
    bank = session.bank.latest
    heard_before = session.player.last_heard()[0]
    session.set_knob("mood", 0.75)  # halfway between stops 1 and 2
    assert wait_for(lambda: len(session.player.targets()) == 2, 0.5)  # the mixer thread, within ms
    targets = {loop.key: g for loop, g in session.player.targets().items()}
    g1, g2 = equal_power(0.5)
    assert targets == {(1,): pytest.approx(g1), (2,): pytest.approx(g2)}
    assert wait_for(lambda: session.player.last_heard()[0] > heard_before, 1.0)  # the clock's next block
    assert wait_for(lambda: session.scheduler.wait_idle(0.1), 120)
    assert wait_for(lambda: {lp.key for lp in session.player.targets()} == {(1.0,)}, 5)  # alpha at 0.75
    assert (1.0,) in bank.exact


def test_loop_ready_is_announced_to_osc_subscribers_over_udp(session):
    got: list[tuple] = []
    arrived = threading.Event()
    dispatcher = Dispatcher()
    dispatcher.map("/steer/loop", lambda addr, *args: (got.append(args), arrived.set()))
    listener = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        host, port = session.surfaces.osc.address
        client = SimpleUDPClient(host, port)
        client.send_message("/steer/subscribe", listener.server_address[1])
        assert wait_for(lambda: bool(session.surfaces.osc.feedback.subscribers), 5)
        client.send_message("/steer/knob/mood", 0.125)  # a position with no render yet
        assert arrived.wait(120)
    finally:
        listener.shutdown()
        listener.server_close()
    path, kind = got[0]
    assert kind == "exact" and Path(path).is_file() and "mood-1.500" in path
    assert session.state.snapshot().knobs["mood"].alpha == -1.5


def test_new_prompt_swaps_scene_at_the_loop_boundary(session):
    old_scene = session.player.stats().scene
    session.set_prompt("another prompt entirely")
    assert wait_for(lambda: session.bank.latest.scene != old_scene, 120)
    assert wait_for(lambda: session.player.stats().scene == session.bank.latest.scene, 5)
    assert session.player.stats().position_s < 0.5  # started at its loop start, not mid-loop


def test_stop_and_play_reach_the_player_and_underruns_stay_zero(session):
    session.stop()
    assert not session.player.playing and not session.state.snapshot().playing
    session.play()
    assert session.player.playing
    status = session.status()
    assert status.underruns == 0 and status.blocks > 0 and status.engine_alive


def test_serve_cli_runs_headless_and_stops_cleanly_on_ctrl_c(session):
    cmd = [sys.executable, "-m", "steerbridge.bridge", "serve", "--preset", str(session.test_folder / "preset.toml"),
           "--output", "null", "--osc", "127.0.0.1:0", "--no-midi", "--grid", "none", "--in-process", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready" and ready["output"].startswith("null @ 48000 Hz")
        assert ready["knobs"] == {"mood": 0.0} and ready["osc"].startswith("127.0.0.1:")
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # say where it is stuck: serve dumps its stacks on SIGUSR1
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            proc.kill()
            pytest.fail(f"serve did not stop within 60 s of Ctrl-C; its threads:\n{proc.communicate()[1][-6000:]}")
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    stopped = json.loads(out.splitlines()[-1])
    assert stopped["event"] == "stopped" and stopped["blocks"] > 0 and stopped["underruns"] == 0
    assert "Traceback" not in err


def test_serve_cli_names_a_bad_preset_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nsource = "tiny"\nstepz = 3\n[scene]\nprompt = "x"\n')
    done = subprocess.run([sys.executable, "-m", "steerbridge.bridge", "serve", "--preset", str(bad),
                           "--output", "null"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "stepz" in done.stderr and "Traceback" not in done.stderr


def test_close_stops_every_thread_it_started(tmp_path, session):
    session.close()
    session.close()  # idempotent
    assert wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("steerbridge-")], 10), \
        [t.name for t in threading.enumerate()]
    blocks = session.player.blocks
    time.sleep(0.1)
    assert session.player.blocks == blocks  # the clock is stopped
    assert np.isfinite(blocks)
