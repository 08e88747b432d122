"""Session resilience: the output device vanishing mid-set, and the live state surviving a restart."""

from __future__ import annotations

import pytest

from steerbridge.bridge.audio.sinks import DeviceSink, NullSink
from steerbridge.bridge.live.session import Session, SessionOptions
from support.waiting import wait_for

PRESET = """\
[model]
source = "tiny"
steps = 2

[scene]
prompt = "resilience loop"
seed = 3
seconds = 0.5

[[knob]]
name = "mood"
vector = "mood.safetensors"
alpha_min = -2.0
alpha_max = 2.0
stops = 2
"""



@pytest.fixture()
def preset_file(tmp_path, tiny_model):
    from steerbridge import engine
    vec = engine.extract_caa(tiny_model, positive=["happy"], negative=["sad"], concept="mood", seconds=0.5, steps=2)
    engine.save_vector(vec, tmp_path / "mood.safetensors")
    (tmp_path / "preset.toml").write_text(PRESET)
    return tmp_path / "preset.toml"


def test_device_lost_mid_set_falls_back_and_keeps_playing(preset_file, jack_server):
    options = SessionOptions(output="default", hostapi="jack", fallback="null", osc=None, midi=None,
                             engine="inprocess", progress=False)
    errors = []
    with Session(preset_file, options=options) as s:
        s.subscribe(lambda e: errors.append(e) if e.kind == "error" else None)
        s.start(timeout=120)
        if not isinstance(s.sink, DeviceSink):  # opening is covered in test_sinks; this test is about losing it
            pytest.skip(f"the JACK output could not be opened this time ({s.status().output})")
        s.sink._stream.abort()  # PortAudio ends the stream on its own, as when a device is unplugged
        assert wait_for(lambda: isinstance(s.sink, NullSink)), "no fallback to the null sink"
        # the session switches the sink first, then reports it
        assert wait_for(lambda: any(e.source == "audio" and "output device lost" in e.message for e in errors))
        blocks = s.player.blocks
        assert wait_for(lambda: s.player.blocks > blocks + 10), "the player stopped after the fallback"


def test_autosave_restores_the_knobs_after_a_restart(preset_file, tmp_path):
    save = tmp_path / "state" / "live.json"
    options = SessionOptions(output="null", osc=None, midi=None, engine="inprocess", progress=False,
                             autosave=str(save), autosave_every_s=0.2)
    with Session(preset_file, options=options) as s:
        s.start(prerender=False)
        s.set_knob("mood", 0.9)
        s.set_prompt("restored prompt")
        assert wait_for(lambda: save.exists())
    with Session(preset_file, options=options) as again:
        again.start(prerender=False)
        snap = again.state.snapshot()
        assert snap.knobs["mood"].value == pytest.approx(0.9) and snap.prompt == "restored prompt"
