"""MIDI: decoding (7-bit, 14-bit, NRPN), pickup and learn with mido messages; then real JACK ports."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mido
import pytest

from steerbridge.bridge.control.midi.decode import MidiDecoder, MidiLearner, Pickup
from steerbridge.bridge.control.midi.router import MidiInput, MidiRouter
from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.presets.model import MidiBinding, load_preset
from support.waiting import wait_for

PRESETS = Path(__file__).resolve().parent.parent / "presets"


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def nrpn(number: int, value14: int, channel: int = 0, *, lsb: bool = True) -> list[mido.Message]:
    msgs = [cc(99, number >> 7, channel), cc(98, number & 127, channel), cc(6, value14 >> 7, channel)]
    return msgs + ([cc(38, value14 & 127, channel)] if lsb else [])


@pytest.fixture()
def preset_path(tmp_path: Path) -> Path:
    shutil.copytree(PRESETS / "vectors", tmp_path / "vectors")
    shutil.copy(PRESETS / "tiny.toml", tmp_path / "tiny.toml")
    return tmp_path / "tiny.toml"


@pytest.fixture()
def state(preset_path: Path) -> ControlState:
    return ControlState(load_preset(preset_path))


def test_decoder_7bit_14bit_and_nrpn() -> None:
    d = MidiDecoder({"a": MidiBinding(channel=1, cc=74), "b": MidiBinding(channel=2, cc=1, mode="14bit"),
                     "c": MidiBinding(channel=1, mode="nrpn", nrpn=300)})
    assert d.feed(cc(74, 127)).value == 1.0 and d.feed(cc(74, 0)).value == 0.0
    assert d.feed(cc(74, 5, channel=1)) is None  # other channel
    assert d.feed(mido.Message("note_on", note=74)) is None
    # 14-bit on channel 2: an MSB alone is a value until the device has sent an LSB ...
    first = d.feed(cc(1, 64, channel=1))
    assert (first.name, first.raw) == ("b", 64 << 7)
    last = d.feed(cc(33, 5, channel=1))
    assert last.raw == (64 << 7) | 5 and last.value == pytest.approx(8197 / 16383)
    # ... then the MSB only latches and the LSB emits: no "new MSB, stale LSB" glitch
    assert d.feed(cc(1, 65, channel=1)) is None
    assert d.feed(cc(33, 0, channel=1)).raw == 65 << 7
    events = [d.feed(m) for m in nrpn(300, 16383)]
    assert events[:2] == [None, None] and events[2].raw == 127 << 7  # no LSB seen yet for this NRPN
    assert events[3].name == "c" and events[3].value == 1.0
    assert [d.feed(m) for m in nrpn(301, 100)] == [None] * 4  # unbound parameter
    assert d.feed(cc(101, 0)) is None and d.feed(cc(100, 0)) is None  # RPN selected: data entry is not ours
    assert d.feed(cc(6, 10)) is None


def test_pickup_waits_until_the_control_reaches_the_value() -> None:
    p = Pickup(tolerance=0.02)
    assert not p.accept("k", 0.9, 0.5)  # far away: no jump
    assert not p.accept("k", 0.8, 0.5)
    assert p.accept("k", 0.4, 0.5)  # crossed 0.5 between two messages: picked up
    assert p.accept("k", 0.1, 0.4)  # engaged: follows
    assert not p.accept("k", 0.2, 0.9)  # someone else set 0.9 meanwhile: pick up again
    assert p.accept("k", 0.89, 0.9)  # within tolerance


def test_learner_7bit_upgrade_to_14bit_and_nrpn() -> None:
    learn = MidiLearner(window_s=0.5)
    assert learn.feed(cc(20, 3, channel=4), now=0.0, armed=True) == MidiBinding(channel=5, cc=20)
    assert learn.feed(cc(52, 9, channel=4), now=0.1, armed=False) == MidiBinding(channel=5, cc=20, mode="14bit")
    learn.feed(cc(21, 3), now=1.0, armed=True)
    assert learn.feed(cc(53, 3), now=2.0, armed=False) is None  # too late for an upgrade
    assert learn.feed(cc(70, 3), now=3.0, armed=True) == MidiBinding(channel=1, cc=70)
    msgs = nrpn(1000, 5)
    got = [learn.feed(m, now=4.0, armed=True) for m in msgs[:3]]
    assert got == [None, None, MidiBinding(channel=1, mode="nrpn", nrpn=1000)]


def test_router_applies_bindings_with_pickup(state: ControlState) -> None:
    router = MidiRouter(state, persist=False)
    router.handle(cc(74, 127))  # mood is at 0.5: the knob far away does not jump it
    assert state.value("mood") == 0.5
    router.handle(cc(74, 60))
    router.handle(cc(74, 70))  # crossed 63.5/127
    assert state.value("mood") == pytest.approx(70 / 127)
    for m in nrpn(300, 0):  # brightness (nrpn 300) is at 0.0 already: picked up at once
        router.handle(m)
    router.handle(cc(6, 64))
    router.handle(cc(38, 0))
    assert state.value("brightness") == pytest.approx((64 << 7) / 16383)
    state.set_value("mood", 0.0, source="osc")  # another source moves it: pickup again
    router.handle(cc(74, 100))
    assert state.value("mood") == 0.0


def test_router_without_pickup_jumps(state: ControlState) -> None:
    router = MidiRouter(state, pickup=False, persist=False)
    router.handle(cc(1, 127))  # tempo: 14-bit MSB on CC 1
    assert state.value("tempo") == pytest.approx((127 << 7) / 16383)


def test_learn_binds_persists_and_takes_the_control_from_its_old_knob(state: ControlState, preset_path: Path) -> None:
    router = MidiRouter(state, pickup=False)
    state.arm_learn("tempo")
    router.handle(cc(74, 10))  # CC 74 belonged to mood
    assert state.snapshot().learn_armed is None
    assert router.wait_saved(30)  # written on the saver's thread
    on_disk = load_preset(preset_path)
    assert on_disk.knob("tempo").midi == MidiBinding(channel=1, cc=74)
    assert on_disk.knob("mood").midi is None
    assert "# Each [[knob]] steers one concept vector" in preset_path.read_text()  # comments kept
    router.handle(cc(74, 127))
    assert state.value("tempo") == 1.0 and state.value("mood") == 0.5
    state.arm_learn("mood")
    router.handle(cc(7, 0, channel=2))
    router.handle(cc(39, 0, channel=2))  # LSB partner right after: 14-bit
    assert router.wait_saved(30)
    assert load_preset(preset_path).knob("mood").midi == MidiBinding(channel=3, cc=7, mode="14bit")
    router.close()


# --- real ports through JACK -------------------------------------------------
JACK_BACKEND = "mido.backends.rtmidi/UNIX_JACK"


@pytest.fixture()
def jack_midi(jack_server):
    if os.environ.get("MIDO_BACKEND", JACK_BACKEND) != JACK_BACKEND:
        pytest.skip(f"MIDO_BACKEND is {os.environ['MIDO_BACKEND']}; these tests use {JACK_BACKEND}")
    previous = mido.backend
    mido.set_backend(JACK_BACKEND, load=True)
    yield
    mido.backend = previous



def test_jack_ports_cc_14bit_nrpn_learn_pickup(jack_midi, state: ControlState, preset_path: Path) -> None:
    controller = mido.open_output("sb-test-controller", virtual=True, client_name="sb-test")
    router = MidiRouter(state)
    midi_in = MidiInput(router, virtual_name="steerbridge-test")
    try:
        opened = midi_in.start()
        assert "steerbridge-test" in opened and any("sb-test-controller" in n for n in opened)
        # the controller's own port is connected to us (all ports); a DAW reaches the virtual port:
        daw = mido.open_output(next(n for n in mido.get_output_names() if "steerbridge-test" in n))
        try:
            for value in (127, 60, 70):  # pickup: 127 is ignored, 60 -> 70 crosses 0.5
                controller.send(cc(74, value))
            assert wait_for(lambda: state.value("mood") == pytest.approx(70 / 127))
            for m in (cc(1, 64), cc(33, 0), cc(1, 100), cc(33, 3)):  # tempo 14-bit, via the virtual port
                daw.send(m)
            assert wait_for(lambda: state.value("tempo") == pytest.approx(((100 << 7) | 3) / 16383))
            for m in [*nrpn(300, 0), *nrpn(300, 9000)]:
                controller.send(m)
            assert wait_for(lambda: state.value("brightness") == pytest.approx(9000 / 16383))
            state.arm_learn("brightness")
            controller.send(cc(20, 1, channel=9))
            assert wait_for(lambda: load_preset(preset_path).knob("brightness").midi == MidiBinding(channel=10, cc=20))
        finally:
            daw.close()
    finally:
        midi_in.close()
        controller.close()
        router.close()
