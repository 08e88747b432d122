"""`serve` on a preset for a diffusers family: an OSC knob move brings the exact render, the same audio a direct
render at that alpha gives (tiny random-weight configs of the real classes, in-process engine, WAV output)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from steerbridge.bridge.audio.wavfile import read_wav
from steerbridge.bridge.live.session import Session, SessionOptions
from support.waiting import wait_for

PRESET = """\
[model]
source = "tiny:{family}"
steps = 2

[scene]
prompt = "test loop with piano"
seed = 7
seconds = 0.5

[[knob]]
name = "mood"
vector = "mood.safetensors"
alpha_min = -2.0
alpha_max = 2.0
default = 0.5
stops = 2
"""


@pytest.mark.parametrize("family", ["sao-diffusers", "ace-step", "sa3"])
def test_osc_knob_brings_the_exact_render(tmp_path, family):
    from steerbridge import engine
    from steerbridge.engine.runtime.steering import Steering, SteeringTerm

    model = engine.load_model(f"tiny:{family}")
    vector = engine.extract_caa(model, positive=["happy song"], negative=["sad song"], concept="mood",
                                seconds=0.5, steps=2, normalize=True)
    engine.save_vector(vector, tmp_path / "mood.safetensors")
    (tmp_path / "preset.toml").write_text(PRESET.format(family=family))
    options = SessionOptions(output=f"wav:{tmp_path / 'loops'}", osc="127.0.0.1:0", midi=None,
                             engine="inprocess", grid="full", progress=False)
    got: list[tuple] = []
    arrived = threading.Event()
    dispatcher = Dispatcher()
    dispatcher.map("/steer/loop", lambda addr, *args: (got.append(args), arrived.set()) if args[1] == "exact"
                   else None)
    listener = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    session = Session(tmp_path / "preset.toml", options=options, say=lambda _: None)
    try:
        session.start(timeout=240)
        host, port = session.surfaces.osc.address
        client = SimpleUDPClient(host, port)
        client.send_message("/steer/subscribe", listener.server_address[1])
        assert wait_for(lambda: bool(session.surfaces.osc.feedback.subscribers), 5)
        client.send_message("/steer/knob/mood", 0.25)  # alpha -1.0: between the two stops, no render yet
        assert arrived.wait(120)
        assert session.state.snapshot().knobs["mood"].alpha == -1.0
    finally:
        session.close()
        listener.shutdown()
        listener.server_close()
    path, kind = got[0]
    assert kind == "exact" and "mood-1.000" in path
    audio, rate = read_wav(Path(path))
    direct = model.render(engine.RenderRequest(prompt="test loop with piano", seed=7, seconds=0.5, steps=2),
                          steering=Steering((SteeringTerm(vector, -1.0),)))
    plain = model.render(engine.RenderRequest(prompt="test loop with piano", seed=7, seconds=0.5, steps=2))
    assert rate == direct.sample_rate and audio.shape == direct.audio.shape
    assert np.abs(audio - direct.audio).max() < 1e-5  # the (float32) WAV holds the exact render
    assert np.abs(audio - plain.audio).max() > 1e-4  # and it is steered
