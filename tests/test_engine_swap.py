"""/steer/preset for another model never blocks OSC: knobs keep working, the old loop keeps playing.

The new engine's start is held on a gate (a real InProcessClient of the real demo model, only
its start waits), so "during the swap" is a fact of the test, not a race with the machine's speed.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from steerbridge.bridge.engine_link.client import InProcessClient
from steerbridge.bridge.live.session import Session, SessionOptions
from support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
PRESET = """\
[model]
source = "{source}"
steps = 2

[scene]
prompt = "{prompt}"
seed = 5
seconds = 0.5

[[knob]]
name = "mood"
vector = "{vector}"
alpha_min = -2.0
alpha_max = 2.0
stops = 2
"""


def _write(folder: Path, name: str, source: str, prompt: str = "swap loop") -> Path:
    vector = ROOT / "presets" / "vectors" / source / "mood.safetensors"
    (folder / name).write_text(PRESET.format(source=source, prompt=prompt, vector=vector.as_posix()))
    return folder / name


class _Gated(InProcessClient):
    """A real in-process engine whose start waits for ``gate`` (the model load then runs for real)."""

    gate = threading.Event()

    def start(self, *, timeout: float = 300.0):
        assert self.gate.wait(120), "the test never opened the gate"
        return super().start(timeout=timeout)


def _factory(preset):
    kind = _Gated if preset.model_source() == "demo" else InProcessClient
    return kind(preset.model_source(), device=preset.model.device, backend=preset.model.backend)


@pytest.fixture()
def session(tmp_path: Path):
    _Gated.gate = threading.Event()
    options = SessionOptions(output="null", osc="127.0.0.1:0", midi=None, engine="inprocess", grid="none",
                             progress=False)
    s = Session(_write(tmp_path, "tiny.toml", "tiny"), options=options, engine_factory=_factory)
    s.start(timeout=120)
    yield s
    _Gated.gate.set()
    s.close()


def _listen(session: Session) -> tuple[list[tuple], ThreadingOSCUDPServer]:
    got: list[tuple] = []
    dispatcher = Dispatcher()
    dispatcher.map("/steer/state/engine", lambda _addr, *args: got.append(args))
    listener = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    host, port = session.surfaces.osc.address
    SimpleUDPClient(host, port).send_message("/steer/subscribe", listener.server_address[1])
    assert wait_for(lambda: bool(got), 10)  # the engine's state is part of what a new subscriber gets
    assert got[-1][0] == "ready"
    return got, listener


def test_knobs_keep_working_and_the_old_loop_plays_while_another_model_loads(session, tmp_path):
    _write(tmp_path, "demo_small.toml", "demo")
    got, listener = _listen(session)
    osc = SimpleUDPClient(*session.surfaces.osc.address)
    applied = []
    session.state.add_listener(lambda c: applied.append(c.value) if c.kind == "knob" and c.source == "osc" else None)
    old_client, scene = session.client, session.player.stats().scene
    underruns, blocks = session.player.stats().underruns, session.player.blocks
    try:
        osc.send_message("/steer/preset", "demo_small.toml")
        assert wait_for(lambda: session.engine_phase[0] == "loading", 10)
        values = [(i + 1) / 1001 for i in range(1000)]
        for v in values:
            osc.send_message("/steer/knob/mood", v)
        assert wait_for(lambda: len(applied) == 1000, 30), f"{len(applied)} of 1000 knob messages applied"
        assert applied == pytest.approx(values)  # every one, in order, while the model was still loading
        assert session.engine_phase[0] == "loading" and session.client is old_client
        assert session.state.value("mood") == pytest.approx(values[-1])
        assert wait_for(lambda: session.player.blocks > blocks + 20, 10)  # the null clock kept running
        assert session.player.stats().scene == scene  # the old loop, still
        _Gated.gate.set()
        assert wait_for(lambda: session.engine_phase[0] == "ready", 120), session.engine_phase
        assert wait_for(lambda: [g[0] for g in got][-2:] == ["loading", "ready"], 10), got
    finally:
        listener.shutdown()
        listener.server_close()
    assert session.client is not old_client and session.client.info.source == "demo"
    assert session.preset.model.source == "demo" and session.state.snapshot().preset.model.source == "demo"
    assert session.player.stats().underruns == underruns == 0


def test_a_newer_request_supersedes_a_model_still_loading(session, tmp_path):
    _write(tmp_path, "demo_small.toml", "demo")
    other_tiny = _write(tmp_path, "tiny_b.toml", "tiny", prompt="a second tiny scene")
    old_client = session.client
    session.load_preset(tmp_path / "demo_small.toml")  # returns at once: the gate is still shut
    assert wait_for(lambda: session.engine_phase[0] == "loading", 10)
    session.load_preset(other_tiny)  # the model running now serves it, once the load in flight ends
    assert session.state.snapshot().prompt == "swap loop"  # nothing applied out of order meanwhile
    _Gated.gate.set()
    assert session.wait_preset(120)
    assert session.engine_phase[0] == "ready" and session.client is old_client
    assert session.state.snapshot().prompt == "a second tiny scene"
    assert session._switcher.superseded == 1 and session._switcher.swaps == 0


def test_a_model_that_fails_to_load_is_reported_and_the_old_one_plays_on(session, tmp_path):
    model = tmp_path / "broken_model"  # passes the preset check, fails to load
    model.mkdir()
    (model / "model_config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"not a safetensors file")
    broken = _write(tmp_path, "broken.toml", "tiny").read_text().replace('source = "tiny"', 'source = "broken_model"')
    (tmp_path / "broken.toml").write_text(broken)
    errors = []
    session.subscribe(lambda e: errors.append(e) if e.kind == "error" else None)
    old_client = session.client
    session.load_preset(tmp_path / "broken.toml")
    assert session.wait_preset(60)
    assert session.engine_phase[0] == "error" and session.client is old_client
    assert any(e.source == "engine" and "old one keeps playing" in e.message for e in errors)
    assert session.state.snapshot().preset.model.source == "tiny"
