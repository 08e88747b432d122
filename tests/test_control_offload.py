"""Control threads do no file work: /steer/preset is read on steerbridge-preset-load, MIDI learn saved on
steerbridge-midi-save. A stalled file system is stood in for by a load/save that waits on a gate, so "the
handler returned before the file work" is a fact of the test, not a race with the machine's speed."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import mido
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

import steerbridge.bridge.control.midi.learnsave as learnsave
import steerbridge.bridge.control.osc.presets as osc_presets
from steerbridge.bridge.control.midi.router import MidiRouter
from steerbridge.bridge.control.osc.server import OscServer
from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.presets.model import MidiBinding, load_preset
from steerbridge.bridge.util.latest import LatestWorker
from support.waiting import wait_for
from test_osc import presets_dir  # noqa: F401 - the fixture: tiny.toml, other.toml (knob "air") and vectors


class Gate:
    """Wraps a file function: records the thread that called it and waits until opened."""

    def __init__(self, fn) -> None:
        self.fn, self.opened, self.entered, self.threads = fn, threading.Event(), threading.Event(), []

    def __call__(self, *args, **kwargs):
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.opened.wait(60), "the test never opened the gate"
        return self.fn(*args, **kwargs)


def _peer(server: OscServer) -> tuple[socket.socket, callable]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock, lambda address, *args: sock.sendto(build_msg(address, list(args)).dgram, server.address)


def test_preset_is_read_off_the_osc_thread_and_knobs_keep_working(presets_dir: Path, monkeypatch) -> None:
    gate = Gate(osc_presets.load_preset)
    monkeypatch.setattr(osc_presets, "load_preset", gate)
    state = ControlState(load_preset(presets_dir / "tiny.toml"))
    applied: list[tuple[str, str]] = []

    def on_preset(preset) -> None:
        applied.append((preset.path.name, threading.current_thread().name))
        state.load_preset(preset, source="osc")

    server = OscServer(state, port=0, presets_dir=presets_dir, on_preset=on_preset).start()
    sock, send = _peer(server)
    try:
        send("/steer/preset", "other")
        assert gate.entered.wait(30)  # the loader is now stuck in the "file system"
        for i in range(200):  # ... and the OSC thread is not: every knob message is applied
            send("/steer/knob/mood", i / 199)
        assert wait_for(lambda: state.value("mood") == 1.0)
        send("/steer/preset", "tiny")  # superseded by the next one before it is served
        send("/steer/preset", "other.toml")
        assert wait_for(lambda: server.presets._worker.submitted == 3)  # noqa: SLF001
        assert applied == [] and state.snapshot().preset.knob_names() == ("mood", "tempo", "brightness")
        gate.opened.set()
        assert server.presets.wait_idle(30)
        assert applied == [("other.toml", "steerbridge-preset-load")] * 2  # the first and the newest request
        assert gate.threads == ["steerbridge-preset-load"] * 2
        assert server.presets._worker.superseded == 1  # noqa: SLF001
        assert state.snapshot().preset.knob_names() == ("mood", "tempo", "air")
        send("/steer/knob/air", 0.25)  # the dispatcher was rebuilt for the new knobs
        assert wait_for(lambda: state.value("air") == 0.25)
    finally:
        gate.opened.set()
        sock.close()
        server.stop()


def test_preset_errors_still_reach_the_sender_over_udp(presets_dir: Path) -> None:
    state = ControlState(load_preset(presets_dir / "tiny.toml"))
    server = OscServer(state, port=0, presets_dir=presets_dir).start()
    sock, send = _peer(server)
    try:
        for name, expected in (("../../etc/passwd", "is not a preset file inside"),
                               ("broken", "missing required key 'scene'")):
            send("/steer/preset", name)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                msg = OscMessage(sock.recv(65536))
                if msg.address == "/steer/error":
                    break
            assert msg.address == "/steer/error" and msg.params[0] == "bad_preset" and expected in msg.params[1]
        assert state.snapshot().preset.knob_names() == ("mood", "tempo", "brightness")
    finally:
        sock.close()
        server.stop()


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def test_midi_learn_binds_at_once_and_saves_on_the_saver_thread(presets_dir: Path, monkeypatch) -> None:
    gate = Gate(learnsave.set_midi_binding)
    monkeypatch.setattr(learnsave, "set_midi_binding", gate)
    path = presets_dir / "tiny.toml"
    state = ControlState(load_preset(path))
    router = MidiRouter(state, pickup=False)
    try:
        state.arm_learn("tempo")
        router.handle(cc(20, 10, channel=2))  # returns although the save is stuck in the "file system"
        assert state.snapshot().preset.knob("tempo").midi == MidiBinding(channel=3, cc=20)
        assert gate.entered.wait(30)
        router.handle(cc(20, 127, channel=2))  # the learned control works before the file is written
        assert state.value("tempo") == 1.0
        assert load_preset(path).knob("tempo").midi != MidiBinding(channel=3, cc=20)
        state.arm_learn("mood")
        router.handle(cc(21, 0, channel=2))  # a second learn while the first save waits: coalesced per file
        gate.opened.set()
        assert router.wait_saved(30)
        on_disk = load_preset(path)
        assert on_disk.knob("tempo").midi == MidiBinding(channel=3, cc=20)
        assert on_disk.knob("mood").midi == MidiBinding(channel=3, cc=21)
        assert set(gate.threads) == {"steerbridge-midi-save"}
    finally:
        gate.opened.set()
        router.close()


def test_a_failed_learn_save_is_reported_and_the_binding_still_works(presets_dir: Path) -> None:
    path = presets_dir / "tiny.toml"
    state = ControlState(load_preset(path))
    errors: list[str] = []
    router = MidiRouter(state, pickup=False, on_error=errors.append)
    try:
        path.write_text("this is [not a preset")  # edited into something unloadable behind our back
        state.arm_learn("tempo")
        router.handle(cc(30, 5))
        assert router.wait_saved(30)
        assert len(errors) == 1 and "was not saved into" in errors[0] and str(path) in errors[0]
        assert path.read_text() == "this is [not a preset"  # nothing half-written
        router.handle(cc(30, 127))
        assert state.value("tempo") == 1.0
    finally:
        router.close()


def test_latest_worker_keeps_the_newest_job_per_key_and_survives_a_failure() -> None:
    failures: list[BaseException] = []
    worker = LatestWorker("test-latest", on_error=failures.append)
    gate, ran = threading.Event(), []
    try:
        worker.submit(lambda: gate.wait(30), key="block")
        for i in range(5):
            worker.submit(lambda i=i: ran.append(("a", i)), key="a")
        worker.submit(lambda: 1 / 0, key="b")
        worker.submit(lambda: ran.append(("c", 0)), key="c")
        gate.set()
        assert worker.wait_idle(30)
        assert ran == [("a", 4), ("c", 0)] and worker.superseded == 4
        assert len(failures) == 1 and isinstance(failures[0], ZeroDivisionError)
    finally:
        worker.close()
