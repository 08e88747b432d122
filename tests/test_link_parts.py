"""The parts of Link play that need no Link session: time stretch, presets, state, OSC, a missing extra."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message_builder import build_msg

from steerbridge.bridge.control.osc.server import OscServer
from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.presets.model import PresetError, load_preset, save_preset

PRESETS = Path(__file__).resolve().parent.parent / "presets"
SENDER = ("127.0.0.1", 45679)
RATE = 48000


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def test_stretch_keeps_the_pitch_and_gives_the_new_length():
    pytest.importorskip("pedalboard", reason="the Link extra is not installed: pip install 'steerbridge[link]'")
    from steerbridge.bridge.audio.stretch import stretch_loop

    n = 2 * RATE
    t = np.arange(n) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    out = stretch_loop(np.stack([tone, tone]), RATE, 126.0 / 97.0)
    assert out.shape == (2, round(n * 97.0 / 126.0)) and out.dtype == np.float32
    assert _peak_hz(out[0], RATE) == pytest.approx(440.0, abs=2.0)  # faster, same pitch
    # the seam: a loop stretched with its own wrap-around has no start-up silence or tail at its ends
    edge = int(0.02 * RATE)
    assert np.sqrt(np.mean(out[0, :edge] ** 2)) > 0.2 and np.sqrt(np.mean(out[0, -edge:] ** 2)) > 0.2
    with pytest.raises(ValueError, match="outside 0.25..4"):
        stretch_loop(np.stack([tone, tone]), RATE, 10.0)


def test_stretch_without_pedalboard_names_the_extra(monkeypatch):
    from steerbridge.bridge.audio.stretch import StretchUnavailable, stretch_loop

    monkeypatch.setitem(sys.modules, "pedalboard", None)
    with pytest.raises(StretchUnavailable, match=r"steerbridge\[link\]"):
        stretch_loop(np.zeros((2, 1000), np.float32), RATE, 1.5)


def test_link_session_without_aalink_names_the_extra(monkeypatch):
    from steerbridge.bridge.live.link import LinkSession, LinkUnavailable

    monkeypatch.setitem(sys.modules, "aalink", None)
    with pytest.raises(LinkUnavailable, match=r"pip install 'steerbridge\[link\]'"):
        LinkSession()


def test_preset_bars_and_link_keys(tmp_path: Path):
    text = (PRESETS / "tiny.toml").read_text().replace('seconds = 4.0', 'seconds = 4.0\nbars = 4\nlink = true')
    (tmp_path / "vectors").symlink_to(PRESETS / "vectors")
    (tmp_path / "p.toml").write_text(text)
    preset = load_preset(tmp_path / "p.toml")
    assert (preset.scene.bars, preset.scene.link) == (4, True)
    assert ControlState(preset).snapshot().bars == 4
    saved = save_preset(preset, tmp_path / "q.toml")
    assert (saved.scene.bars, saved.scene.link) == (4, True)
    default = load_preset(PRESETS / "tiny.toml")
    assert (default.scene.bars, default.scene.link) == (2, False)
    (tmp_path / "bad.toml").write_text(text.replace("bars = 4", "bars = 0").replace("link = true", 'link = "yes"'))
    with pytest.raises(PresetError) as err:
        load_preset(tmp_path / "bad.toml")
    assert "scene.bars: expected a whole number of bars 1..64, got 0" in str(err.value)
    assert "scene.link: expected true or false, got 'yes'" in str(err.value)


def test_state_bars_are_checked():
    state = ControlState(load_preset(PRESETS / "tiny.toml"))
    seen = []
    state.add_listener(seen.append)
    state.set_bars(4, source="osc")
    assert state.snapshot().bars == 4 and seen[-1].kind == "bars" and seen[-1].value == 4
    for bad in (0, 65, 2.5, True):
        with pytest.raises(ValueError, match="whole number of bars"):
            state.set_bars(bad)


def test_osc_bars_and_link_feedback():
    state = ControlState(load_preset(PRESETS / "tiny.toml"))
    server = OscServer(state, port=0, presets_dir=PRESETS)
    try:
        server.feedback.subscribe(("127.0.0.1", 9))

        def feed(address, *args):
            server.dispatcher.call_handlers_for_packet(build_msg(address, list(args)).dgram, SENDER)

        feed("/steer/bars", 4)
        assert state.snapshot().bars == 4
        feed("/steer/bars", 0)
        assert state.snapshot().bars == 4
        pending = {address: args for address, args, _ in server.feedback._pending.values()}  # noqa: SLF001
        assert pending["/steer/state/bars"] == (4,)
        assert "whole number of bars" in pending["/steer/error"][1]
        server.notify_link("tempo", 97.0)
        server.notify_link("playing", True)
        pending = {address: args for address, args, _ in server.feedback._pending.values()}  # noqa: SLF001
        assert pending["/steer/state/link/tempo"] == (97.0,) and pending["/steer/state/link/playing"] == (1,)
        # a new subscriber is told Link's state too (LinkPlay registers this)
        server.extra_state.append(lambda: [("/state/link/peers", (2,))])
        server.feedback._pending.clear()  # noqa: SLF001
        feed("/steer/subscribe", 9001)
        sent = {(address, args) for address, args, _ in server.feedback._pending.values()}  # noqa: SLF001
        assert ("/steer/state/link/peers", (2,)) in sent and ("/steer/state/bars", (4,)) in sent
    finally:
        server.stop()


def test_a_tempo_asked_for_here_goes_to_the_band_and_links_own_does_not_echo():
    from dataclasses import replace

    from steerbridge.bridge.control.state import Change
    from steerbridge.bridge.live.linkplay import _asked_tempo
    from steerbridge.bridge.presets.model import Knob, load_preset

    base = load_preset(PRESETS / "tiny.toml")
    preset = replace(base, knobs=base.knobs + (Knob(name="bpm", target="bpm", alpha_min=70.0, alpha_max=160.0),))
    assert _asked_tempo(Change(1, "bpm", value=110.0, source="osc"), preset) == 110.0
    assert _asked_tempo(Change(2, "knob", name="bpm", value=0.5, alpha=115.0, source="midi"), preset) == 115.0
    assert _asked_tempo(Change(3, "knob", name="bpm", value=0.5, alpha=115.0, source="link"), preset) is None
    assert _asked_tempo(Change(4, "knob", name=base.knobs[0].name, value=0.5, alpha=1.0, source="midi"), preset) is None
    assert _asked_tempo(Change(5, "bpm", value=None, source="osc"), preset) is None
