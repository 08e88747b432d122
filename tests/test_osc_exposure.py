"""Network exposure of the OSC server: loopback by default, remote only with a flag and an allowlist,
and paths over OSC confined to the presets folder.

Every socket here is on 127.0.0.0/8: the allowlist is exercised with two
loopback addresses (the server on 127.0.0.1, senders bound to 127.0.0.2/.3).
Non-loopback hosts are only ever *refused*, before any socket exists.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import time
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

from steerbridge.bridge.control.osc.server import OscServer, is_loopback_host
from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.live.session import SessionOptions
from steerbridge.bridge.presets.model import load_preset

PRESETS = Path(__file__).resolve().parent.parent / "presets"


@pytest.fixture()
def layout(tmp_path: Path) -> Path:
    """tmp/presets (the served folder, with a sub-folder) and tmp/outside (a valid preset that must stay out)."""
    presets = tmp_path / "presets"
    presets.mkdir()
    for folder in (presets, tmp_path / "outside", presets / "sub"):
        folder.mkdir(exist_ok=True)
        shutil.copytree(PRESETS / "vectors", folder / "vectors", dirs_exist_ok=True)
        shutil.copy(PRESETS / "tiny.toml", folder / ("ok.toml" if folder.name == "sub" else "demo.toml"))
    shutil.copy(PRESETS / "tiny.toml", tmp_path / "outside" / "evil.toml")
    (presets / "linkdir").symlink_to(tmp_path / "outside", target_is_directory=True)
    (presets / "link.toml").symlink_to(tmp_path / "outside" / "evil.toml")
    return presets


def state_for(presets: Path) -> ControlState:
    return ControlState(load_preset(presets / "demo.toml"))


def sender(ip: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 0))
    sock.settimeout(0.3)
    return sock


def answer(sock: socket.socket, address: str, params: list | None = None, *, timeout: float) -> OscMessage | None:
    """The first message to ``address`` (with ``params``, when given) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = OscMessage(sock.recv(65536))
        except socket.timeout:
            continue
        if msg.address == address and (params is None or msg.params == params):
            return msg
    return None


# --- binding ---------------------------------------------------------------------
def test_defaults_listen_on_loopback_only(layout: Path) -> None:
    from steerbridge.bridge.cli import serve

    server = OscServer(state_for(layout), port=0)
    try:
        assert server.address[0] == "127.0.0.1"
    finally:
        server.stop()
    assert SessionOptions().osc.startswith("127.0.0.1:")
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    assert parser.parse_args(["serve", "--preset", "x.toml"]).osc.startswith("127.0.0.1:")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "10.1.2.3", ""])
def test_other_interfaces_need_the_explicit_flag(layout: Path, host: str) -> None:
    with pytest.raises(ValueError, match="allow_remote / --osc-allow-remote"):
        OscServer(state_for(layout), host=host, port=0)


def test_remote_listening_needs_an_allowlist_of_valid_addresses(layout: Path) -> None:
    with pytest.raises(ValueError, match="needs a list of allowed sender addresses"):
        OscServer(state_for(layout), host="0.0.0.0", port=0, allow_remote=True)
    with pytest.raises(ValueError, match="'not-an-ip' is not an IP address or network"):
        OscServer(state_for(layout), host="0.0.0.0", port=0, allow_remote=True, allowed_senders=["not-an-ip"])


def test_loopback_names_and_addresses() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("127.0.0.2") and is_loopback_host("localhost")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("192.0.2.1") and not is_loopback_host("")
    assert not is_loopback_host("no-such-host.invalid")


def test_any_loopback_address_may_be_used_without_the_flag(layout: Path) -> None:
    server = OscServer(state_for(layout), host="127.0.0.2", port=0).start()
    try:
        sock = sender("127.0.0.1")
        sock.sendto(build_msg("/steer/seed", [77]).dgram, server.address)
        deadline = time.monotonic() + 5
        while server.state.snapshot().seed != 77 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.address[0] == "127.0.0.2" and server.state.snapshot().seed == 77
        sock.close()
    finally:
        server.stop()


# --- the sender allowlist, over real loopback UDP ---------------------------------------
def test_senders_outside_the_allowlist_are_dropped_unanswered_and_logged_once(layout: Path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    state = state_for(layout)
    server = OscServer(state, port=0, allow_remote=True, allowed_senders=["127.0.0.2"]).start()
    allowed, stranger = sender("127.0.0.2"), sender("127.0.0.3")
    try:
        for sock in (allowed, stranger):
            sock.sendto(build_msg("/steer/subscribe", []).dgram, server.address)
        before = state.version
        for i in range(20):  # also a malformed packet: a stranger gets no error reply either
            stranger.sendto(build_msg("/steer/seed", [100 + i]).dgram, server.address)
        stranger.sendto(b"garbage", server.address)
        allowed.sendto(build_msg("/steer/seed", [5]).dgram, server.address)
        assert answer(allowed, "/steer/state/seed", [5], timeout=5) is not None
        assert state.snapshot().seed == 5 and state.version == before + 1  # only the allowed change landed
        assert answer(stranger, "/steer/state/seed", timeout=0.5) is None  # not even its subscribe was served
        assert server.refused["sender_refused"] == 22 and server.feedback.subscribers == {allowed.getsockname()}
        lines = [r for r in caplog.records if getattr(r, "osc_kind", None) == "sender_refused"]
        assert len(lines) == 1 and "127.0.0.3" in lines[0].getMessage()
    finally:
        allowed.close()
        stranger.close()
        server.stop()


def test_an_allowlisted_network(layout: Path) -> None:
    server = OscServer(state_for(layout), port=0, allowed_senders=["127.0.0.0/30"]).start()  # .0 - .3
    try:
        inside, outside = sender("127.0.0.3"), sender("127.0.0.4")
        inside.sendto(build_msg("/steer/seed", [9]).dgram, server.address)
        outside.sendto(build_msg("/steer/seed", [10]).dgram, server.address)
        deadline = time.monotonic() + 5
        while server.refused["sender_refused"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert server.state.snapshot().seed == 9 and server.refused["sender_refused"] == 1
        inside.close()
        outside.close()
    finally:
        server.stop()


# --- /steer/preset confinement ---------------------------------------------------------
TRAVERSALS = [
    "../outside/evil.toml", "../outside/evil", "..%2foutside%2fevil.toml", "%2e%2e/outside/evil.toml",
    "sub/../../outside/evil.toml", "vectors/../../outside/evil.toml", "linkdir/evil.toml", "link.toml",
    "..\\outside\\evil.toml", "~/evil.toml", "vectors", ".", "", "..",
    "/etc/passwd", "//etc/passwd", "file:///etc/passwd",
]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_preset_paths_stay_inside_the_presets_folder(layout: Path, name: str) -> None:
    state = state_for(layout)
    server = OscServer(state, port=0, presets_dir=layout)
    try:
        before = state.snapshot()
        server.dispatcher.call_handlers_for_packet(build_msg("/steer/preset", [name]).dgram, ("127.0.0.1", 9))
        assert server.presets.wait_idle(30)  # read and checked on steerbridge-preset-load
        assert state.snapshot() is before
        (error,) = [a for address, a, _ in server.feedback._pending.values() if address == "/steer/error"]  # noqa: SLF001
        assert error[0] == "bad_preset" and "is not a preset file inside" in error[1]
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["demo", "demo.toml", "sub/ok.toml", "./demo.toml"])
def test_presets_inside_the_folder_still_load(layout: Path, name: str) -> None:
    state = state_for(layout)
    server = OscServer(state, port=0, presets_dir=layout)
    try:
        server.dispatcher.call_handlers_for_packet(build_msg("/steer/preset", [name]).dgram, ("127.0.0.1", 9))
        assert server.presets.wait_idle(30)  # read and checked on steerbridge-preset-load
        assert state.version == 1 and state.snapshot().preset.path.is_relative_to(layout)
    finally:
        server.stop()


def test_absolute_path_is_refused_even_inside_the_folder(layout: Path) -> None:
    state = state_for(layout)
    server = OscServer(state, port=0, presets_dir=layout)
    try:
        server.dispatcher.call_handlers_for_packet(
            build_msg("/steer/preset", [str(layout / "demo.toml")]).dgram, ("127.0.0.1", 9))
        assert server.presets.wait_idle(30)
        assert state.version == 0
    finally:
        server.stop()


def test_no_presets_folder_means_no_preset_switching(layout: Path) -> None:
    state = state_for(layout)
    server = OscServer(state, port=0)  # presets_dir=None
    try:
        server.dispatcher.call_handlers_for_packet(build_msg("/steer/preset", ["demo"]).dgram, ("127.0.0.1", 9))
        assert server.presets.wait_idle(30)
        assert state.version == 0
    finally:
        server.stop()
