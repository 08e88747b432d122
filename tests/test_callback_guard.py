"""A bug in the mix: one silent block per fault, one report per kind, the stream and its sink stay."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from steerbridge.bridge.audio.guard import CallbackGuard
from steerbridge.bridge.audio.loops import prepare_loop
from steerbridge.bridge.audio.player import LoopPlayer
from steerbridge.bridge.audio.sinks import DeviceSink, NullSink
from steerbridge.bridge.live.session import Session, SessionOptions
from support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
PRESET = """\
[model]
source = "tiny"
steps = 2

[scene]
prompt = "guarded loop"
seed = 5
seconds = 0.5

[[knob]]
name = "mood"
vector = "{vector}"
alpha_min = -2.0
alpha_max = 2.0
stops = 2
"""


def _boom(*_args: object) -> bool:
    raise RuntimeError("planted fault in the mix")


def test_a_raising_mix_is_silence_counted_once_reported_and_heals():
    player = LoopPlayer(rate=48000)
    loop = prepare_loop(np.full((2, 4800), 0.5, np.float32), source_rate=48000, rate=48000)
    player.set_voices({loop: 1.0}, scene="s")
    guard, sink = CallbackGuard(player.process), NullSink(blocksize=256)
    assert sink.run_blocks(4, guard)[-1, 0] > 0.0
    player._mix_deck = _boom  # an instance attribute shadows the method: the next blocks raise
    out = sink.run_blocks(5, guard)
    assert not out.any() and guard.errors == 5  # silence, not the previous block's leftovers
    reports = guard.take_reports()
    assert len(reports) == 1 and "RuntimeError" in reports[0] and "planted fault" in reports[0]
    sink.run_blocks(3, guard)
    assert guard.take_reports() == [] and guard.errors == 8  # counted, not reported again
    del player._mix_deck
    assert sink.run_blocks(2, guard)[-1, 0] > 0.0 and guard.errors == 8  # the next good block plays


@pytest.fixture()
def preset_file(tmp_path: Path) -> Path:
    vector = ROOT / "presets" / "vectors" / "tiny" / "mood.safetensors"
    (tmp_path / "preset.toml").write_text(PRESET.format(vector=vector.as_posix()))
    return tmp_path / "preset.toml"


def _plant_and_watch(session: Session) -> tuple[list[tuple], object]:
    """Subscribe over real UDP, plant the fault, and return the /steer/error messages received."""
    got: list[tuple] = []
    dispatcher = Dispatcher()
    dispatcher.map("/steer/error", lambda _addr, *args: got.append(args))
    listener = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    host, port = session.surfaces.osc.address
    SimpleUDPClient(host, port).send_message("/steer/subscribe", listener.server_address[1])
    assert wait_for(lambda: bool(session.surfaces.osc.feedback.subscribers), 10)
    session.player._mix_deck = _boom
    return got, listener


@pytest.mark.parametrize("output", ["null", "jack"])
def test_session_survives_a_planted_fault_reports_it_once_and_keeps_its_sink(preset_file, output, request):
    if output == "jack":
        request.getfixturevalue("jack_server")
    options = SessionOptions(output="null" if output == "null" else "default", hostapi="jack", fallback="null",
                             osc="127.0.0.1:0", midi=None, engine="inprocess", grid="none", progress=False)
    errors = []
    with Session(preset_file, options=options) as s:
        s.subscribe(lambda e: errors.append(e) if e.kind == "error" else None)
        s.start(timeout=120)
        if output == "jack" and not isinstance(s.sink, DeviceSink):
            pytest.skip(f"the JACK output could not be opened this time ({s.status().output})")
        sink = s.sink
        got, listener = _plant_and_watch(s)
        try:
            assert wait_for(lambda: s.callback.errors > 20, 20), "the clock stopped calling the callback"
            assert wait_for(lambda: len(got) >= 1, 10), "no /steer/error reached the subscriber"
            blocks = s.callback.errors
            assert wait_for(lambda: s.callback.errors > blocks + 20, 20)  # the stream keeps running
        finally:
            listener.shutdown()
            listener.server_close()
        assert s.sink is sink and not getattr(sink, "lost", False)  # no fallback: the device is fine
        callback_reports = [args for args in got if args[0] == "callback"]
        assert len(callback_reports) == 1 and "planted fault" in callback_reports[0][1]
        panel = [e for e in errors if e.source == "callback"]
        assert len(panel) == 1 and not any(e.source == "audio" for e in errors)
        assert s.status().callback_errors == s.callback.errors > 40
        del s.player._mix_deck
        heard = s.player.blocks
        assert wait_for(lambda: s.player.blocks > heard + 10, 10)  # healed: the player mixes again
