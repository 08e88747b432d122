"""OSC: every address at dispatcher level, then over real UDP on 127.0.0.1 with feedback."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

from steerbridge.bridge.control.osc.server import OscServer
from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.presets.model import load_preset
from support.waiting import wait_for

PRESETS = Path(__file__).resolve().parent.parent / "presets"
SENDER = ("127.0.0.1", 45678)


@pytest.fixture()
def presets_dir(tmp_path: Path) -> Path:
    shutil.copytree(PRESETS / "vectors", tmp_path / "vectors")
    shutil.copy(PRESETS / "tiny.toml", tmp_path / "tiny.toml")
    text = (PRESETS / "tiny.toml").read_text().replace('name = "brightness"', 'name = "air"')
    (tmp_path / "other.toml").write_text(text.replace('osc = "/steer/knob/brightness"', ""))
    (tmp_path / "broken.toml").write_text("[model]\nsource = 'tiny'\n")
    return tmp_path


@pytest.fixture()
def osc(presets_dir: Path):
    state = ControlState(load_preset(presets_dir / "tiny.toml"))
    server = OscServer(state, port=0, presets_dir=presets_dir)
    yield server
    server.stop()


def feed(server: OscServer, address: str, *args: object) -> None:
    server.dispatcher.call_handlers_for_packet(build_msg(address, list(args)).dgram, SENDER)
    assert server.presets.wait_idle(30)  # /steer/preset is read and applied on its own thread


def errors(server: OscServer) -> list[tuple[str, ...]]:
    """Error messages queued for the sender (feedback thread not started: inspect the queue)."""
    return [args for address, args, targets in server.feedback._pending.values()  # noqa: SLF001
            if address == "/steer/error" and targets is not None and SENDER in targets]


def test_every_address_sets_state(osc: OscServer, presets_dir: Path) -> None:
    s = osc.state
    feed(osc, "/steer/knob/mood", 0.75)
    feed(osc, "/steer/alpha/tempo", 2.0)
    feed(osc, "/steer/knob/brightness", 1)  # ints are numbers too
    feed(osc, "/steer/prompt", "dark techno")
    feed(osc, "/steer/seed", 42)
    feed(osc, "/steer/seed", 43.0)  # Max number boxes send floats
    feed(osc, "/steer/seconds", 2.5)
    feed(osc, "/steer/bpm", 96)
    feed(osc, "/steer/learn", "tempo")
    feed(osc, "/steer/play")
    snap = s.snapshot()
    assert snap.knobs["mood"].alpha == 2.0 and snap.knobs["tempo"].value == 0.75
    assert snap.knobs["brightness"].alpha == 6.0
    assert (snap.prompt, snap.seed, snap.seconds, snap.bpm, snap.playing, snap.learn_armed) == (
        "dark techno", 43, 2.5, 96.0, True, "tempo")
    feed(osc, "/steer/stop")
    feed(osc, "/steer/learn", "")
    assert not s.snapshot().playing and s.snapshot().learn_armed is None
    assert errors(osc) == []
    feed(osc, "/steer/preset", "other")
    assert s.snapshot().preset.knob_names() == ("mood", "tempo", "air")
    feed(osc, "/steer/knob/air", 1.0)  # the dispatcher was rebuilt for the new knobs
    assert s.snapshot().knobs["air"].value == 1.0 and errors(osc) == []


def test_values_are_clamped(osc: OscServer) -> None:
    feed(osc, "/steer/knob/mood", 3.0)
    feed(osc, "/steer/alpha/tempo", -100.0)
    assert osc.state.value("mood") == 1.0 and osc.state.snapshot().knobs["tempo"].alpha == -4.0


def test_wildcards_reach_every_matching_knob(osc: OscServer) -> None:
    feed(osc, "/steer/knob/*", 0.25)
    assert osc.state.snapshot().values() == {"mood": 0.25, "tempo": 0.25, "brightness": 0.25}
    feed(osc, "/steer/knob/{mood,tempo}", 1.0)
    feed(osc, "/steer/alpha/[b]*", 0.0)
    assert osc.state.snapshot().values() == {"mood": 1.0, "tempo": 1.0, "brightness": 0.0}


@pytest.mark.parametrize("address, args, expected", [
    ("/steer/knob/mood", ["loud"], "/steer/knob/mood expects a number; got ['loud']"),
    ("/steer/knob/mood", [], "expects a number; got []"),
    ("/steer/knob/mood", [float("nan")], "expects a number"),
    ("/steer/seed", [1.5], "/steer/seed expects an integer"),
    ("/steer/seed", [-3], "seed -3 is out of range"),
    ("/steer/prompt", [3], "expects a string"),
    ("/steer/prompt", [" "], "prompt is empty"),
    ("/steer/play", [1], "/steer/play expects no arguments"),
    ("/steer/bpm", [1000.0], "tempo 1000.0 BPM is out of range; use 20..400"),
    ("/steer/bpm", ["fast"], "/steer/bpm expects a number"),
    ("/steer/learn", ["nope"], "no knob named 'nope'"),
    ("/steer/knob/nope", [0.5], "no such address '/steer/knob/nope'; knobs: mood, tempo, brightness"),
    ("/steer/preset", ["../../etc/passwd"], "is not a preset file inside"),
    ("/steer/preset", ["/etc/hosts"], "is not a preset file inside"),
    ("/steer/preset", ["missing"], "is not a preset file inside"),
    ("/steer/preset", ["broken"], "missing required key 'scene'"),
    ("/steer/subscribe", [70000], "port 70000 is not 1..65535"),
])
def test_bad_arguments_are_answered_with_an_error(osc: OscServer, address: str, args: list, expected: str) -> None:
    before = osc.state.snapshot()
    feed(osc, address, *args)
    (err,) = errors(osc)
    assert expected in err[1], err
    assert osc.state.snapshot() is before  # nothing changed


def test_preset_outside_folder_via_symlink_is_refused(osc: OscServer, presets_dir: Path, tmp_path_factory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "evil.toml"
    outside.write_text((presets_dir / "tiny.toml").read_text())
    (presets_dir / "link.toml").symlink_to(outside)
    feed(osc, "/steer/preset", "link.toml")
    assert "is not a preset file inside" in errors(osc)[0][1]


def test_receive_buffer_is_large() -> None:
    state = ControlState(load_preset(PRESETS / "tiny.toml"))
    server = OscServer(state, port=0)
    try:
        got = server._server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # noqa: SLF001
        assert got >= 4 * 1024 * 1024
    finally:
        server.stop()


# --- over a real UDP socket --------------------------------------------------
class Peer:
    """A controller: one UDP socket that sends to the server and receives feedback."""

    def __init__(self, server: OscServer) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.server = server.address

    def send(self, address: str, *args: object) -> None:
        self.sock.sendto(build_msg(address, list(args)).dgram, self.server)

    def expect(self, address: str, *, timeout: float = 5) -> OscMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = OscMessage(self.sock.recv(65536))
            if msg.address == address:
                return msg
        raise AssertionError(f"no {address} within {timeout} s")



@pytest.fixture()
def live(osc: OscServer):
    osc.start()
    peer = Peer(osc)
    yield osc, peer
    peer.sock.close()


def test_udp_subscribe_gets_state_and_feedback(live) -> None:
    osc, peer = live
    peer.send("/steer/subscribe")
    assert peer.expect("/steer/state/knob/mood").params == [0.5, 0.0]
    peer.send("/steer/knob/mood", 1.0)
    msg = peer.expect("/steer/state/knob/mood")
    assert msg.params == [1.0, 4.0]
    peer.send("/steer/seed", 5)
    assert peer.expect("/steer/state/seed").params == [5]
    osc.notify_progress(3, 8, "exact")
    assert peer.expect("/steer/progress").params == [3, 8, "exact"]
    osc.notify_loop("/tmp/loop.wav", "exact")
    assert peer.expect("/steer/loop").params == ["/tmp/loop.wav", "exact"]
    peer.send("/steer/knob/mood", "x")
    err = peer.expect("/steer/error")
    assert err.params[0] == "bad_args" and "expects a number" in err.params[1]


def test_udp_error_reaches_a_sender_that_did_not_subscribe(live) -> None:
    osc, peer = live
    peer.send("/steer/nothing/here", 1)
    err = peer.expect("/steer/error")
    assert err.params[0] == "unknown_address"
    assert osc.feedback.subscribers == frozenset()


def test_udp_subscribe_to_another_port_and_every_address(live) -> None:
    osc, peer = live
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    peer.send("/steer/subscribe", listener.getsockname()[1])
    assert wait_for(lambda: len(osc.feedback.subscribers) == 1)
    for address, args in [("/steer/knob/tempo", [0.0]), ("/steer/alpha/mood", [-4.0]), ("/steer/prompt", ["ambient"]),
                          ("/steer/seed", [11]), ("/steer/learn", ["mood"]), ("/steer/play", []),
                          ("/steer/stop", []), ("/steer/preset", ["tiny.toml"])]:
        peer.send(address, *args)
    assert wait_for(lambda: osc.state.snapshot().prompt == osc.state.snapshot().preset.scene.prompt
             and osc.state.version >= 8)
    received = set()
    deadline = time.monotonic() + 5
    while "/steer/state/preset" not in received and time.monotonic() < deadline:
        received.add(OscMessage(listener.recv(65536)).address)
    assert {"/steer/state/knob/tempo", "/steer/state/knob/mood", "/steer/state/prompt", "/steer/state/seed",
            "/steer/state/learn", "/steer/state/playing", "/steer/state/preset"} <= received
    peer.send("/steer/unsubscribe", listener.getsockname()[1])
    assert wait_for(lambda: not osc.feedback.subscribers)
    listener.close()


def test_udp_burst_ends_on_the_newest_value(live) -> None:
    osc, peer = live
    for i in range(2000):
        peer.send("/steer/knob/mood", i / 1999)
    assert wait_for(lambda: osc.state.value("mood") == 1.0)
    assert osc.state.version >= 1  # in order: the last message wins
