"""Fuzzing the OSC server: malformed datagrams never crash, hang or flood the log.

Three layers: hypothesis against the packet guard and python-osc's parser
(no sockets), the python-osc weaknesses the guard exists for (one packet
each over real UDP), and a few thousand mixed malformed packets against a
running server on 127.0.0.1 with answered probes in between.
"""

from __future__ import annotations

import logging
import math
import shutil
import socket
import struct
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg
from pythonosc.osc_packet import OscPacket

from steerbridge.bridge.control.osc.guard import TYPE_TAGS, BadPacket, check_packet
from steerbridge.bridge.control.osc.server import OscServer
from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.presets.model import load_preset
from support.osc_fuzz import FAMILIES, PROBE_BASE, run_fuzz

PRESETS = Path(__file__).resolve().parent.parent / "presets"


def _pad(raw: bytes) -> bytes:
    raw += b"\x00"
    return raw + b"\x00" * (-len(raw) % 4)


# --- the guard and python-osc's parser, without sockets -----------------------
near_valid = st.builds(
    lambda address, tags, payload, comma: _pad(address) + _pad((b"," if comma else b"") + tags) + payload,
    st.sampled_from([b"/steer/knob/mood", b"/steer/prompt", b"/steer/*", b"/x", b"/steer/knob/[a-z]*"]),
    st.text(alphabet="".join(TYPE_TAGS) + "xSc", max_size=8).map(str.encode),
    st.binary(max_size=64), st.booleans())
bundles = st.builds(lambda tag, size, body: b"#bundle\x00" + tag + struct.pack(">i", size) + body,
                    st.binary(min_size=8, max_size=8), st.integers(-(2**31), 2**31 - 1), st.binary(max_size=64))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=256), near_valid, bundles))
def test_guard_refuses_cleanly_or_python_osc_parses_silently(data: bytes) -> None:
    root = logging.getLogger()
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    root.addHandler(handler)
    try:
        check_packet(data)
    except BadPacket as exc:
        assert exc.kind in {"too_large", "not_osc", "truncated", "bad_type_tag", "bad_address", "bad_bundle",
                            "too_deep", "too_many", "bad_string"}
        return
    finally:
        root.removeHandler(handler)
    root.addHandler(handler)
    try:
        packet = OscPacket(data)  # accepted: must parse without any exception ...
    finally:
        root.removeHandler(handler)
    assert packet.messages or data.startswith(b"#bundle")
    assert records == []  # ... and without python-osc's per-packet log warnings


def test_every_family_is_generated_and_mostly_refused() -> None:
    import random

    rng = random.Random(0)
    for name, make in FAMILIES.items():
        kinds = Counter()
        for _ in range(50):
            try:
                check_packet(make(rng))
                kinds["accepted"] += 1
            except BadPacket as exc:
                kinds[exc.kind] += 1
        # nan/inf, unknown addresses and future bundles are well-formed packets: the handlers refuse them
        if name not in ("nan_inf", "unknown_address", "future_bundle", "bit_flip"):
            assert kinds["accepted"] <= 5, (name, kinds)


# --- over real UDP on 127.0.0.1 ---------------------------------------------------
@pytest.fixture()
def server(tmp_path: Path):
    shutil.copytree(PRESETS / "vectors", tmp_path / "vectors")
    shutil.copy(PRESETS / "tiny.toml", tmp_path / "tiny.toml")
    state = ControlState(load_preset(tmp_path / "tiny.toml"))
    # An hour between repeats: in this test every kind must be logged exactly once.
    osc = OscServer(state, port=0, presets_dir=tmp_path, log_every_s=3600).start()
    yield osc
    osc.stop()


class Probe:
    def __init__(self, osc: OscServer) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.address = osc.address
        self.n = 0

    def answered(self, timeout: float = 5.0) -> bool:
        """Send a valid /steer/seed and wait for the server's answer to it (we are subscribed)."""
        self.n += 1
        value = PROBE_BASE + self.n
        self.sock.sendto(build_msg("/steer/seed", [value]).dgram, self.address)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = OscMessage(self.sock.recv(65536))
            except socket.timeout:
                continue
            if msg.address == "/steer/state/seed" and msg.params == [value]:
                return True
        return False


KILLERS = {
    "bundle element size -4 (python-osc loops forever)":
        (b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", -4), "bad_bundle"),
    "non-UTF-8 string (UnicodeDecodeError escapes python-osc)":
        (_pad(b"/steer/prompt") + _pad(b",s") + _pad(b"\xff\xfe"), "bad_string"),
    "'[]' in the address (re.error in the dispatcher)": (build_msg("/steer/knob/[]", [0.5]).dgram, "bad_address"),
    "60 wildcards (exponential regex backtracking)":
        (build_msg("/steer/knob/" + "*" * 60 + "z", [0.5]).dgram, "bad_address"),
    "200 nested bundles (recursion)": (None, "too_deep"),
    "unknown type tag (python-osc logs a warning per packet)":
        (_pad(b"/steer/knob/mood") + _pad(b",x") + b"\x00" * 4, "bad_type_tag"),
    "60 KB string": (_pad(b"/steer/prompt") + _pad(b",s") + _pad(b"a" * 60000), "too_large"),
}


def _nested(depth: int) -> bytes:
    packet = build_msg("/steer/play", []).dgram
    for _ in range(depth):
        packet = b"#bundle\x00" + b"\x00" * 7 + b"\x01" + struct.pack(">i", len(packet)) + packet
    return packet


@pytest.mark.parametrize("name", list(KILLERS))
def test_python_osc_weaknesses_are_refused_and_the_server_keeps_answering(server: OscServer, name: str,
                                                                         caplog) -> None:
    data, kind = KILLERS[name]
    data = data if data is not None else _nested(200)
    probe = Probe(server)
    probe.sock.sendto(build_msg("/steer/subscribe", []).dgram, server.address)
    caplog.set_level(logging.WARNING)
    probe.sock.sendto(data, server.address)
    assert probe.answered(), "the server stopped answering after one malformed packet"
    assert server.refused == Counter({kind: 1})
    error = next(r for r in caplog.records if getattr(r, "osc_kind", None) == kind)
    assert "malformed OSC packet from 127.0.0.1" in error.getMessage()
    assert not [r for r in caplog.records if r.name in ("root", "pythonosc") or r.name.startswith("pythonosc.")]


def test_thousands_of_malformed_packets_no_crash_no_hang_one_log_line_per_kind(server: OscServer, caplog) -> None:
    caplog.set_level(logging.WARNING)
    report = run_fuzz(server.address, packets=3000, seed=7, probe_every=50, max_s=60)
    assert report.sent == 3000 and set(report.by_family) == set(FAMILIES)
    assert report.probes == 60 and report.probes_answered == 60, report  # it kept answering valid messages
    assert server._thread is not None and server._thread.is_alive()  # noqa: SLF001
    assert report.elapsed_s < 60
    logged = Counter(getattr(r, "osc_kind", None) for r in caplog.records if r.name == "steerbridge.bridge.control.osc.server")
    assert None not in logged, [r.getMessage() for r in caplog.records if not hasattr(r, "osc_kind")][:3]
    # every kind that occurred was logged exactly once (rate-limited), packet-level and handler-level
    assert set(logged) >= {"too_large", "not_osc", "truncated", "bad_type_tag", "bad_address", "bad_bundle",
                           "too_deep", "bad_string", "bad_args", "unknown_address"}, logged
    assert set(logged.values()) == {1}, logged
    assert sum(server.refused.values()) > 1000  # most of them never reached python-osc
    assert not [r for r in caplog.records if r.name == "root" or r.name.startswith("pythonosc")]
    snap = server.state.snapshot()  # whatever got through left a sane state
    assert all(0.0 <= k.value <= 1.0 and math.isfinite(k.alpha) for k in snap.knobs.values())
    assert math.isfinite(snap.seconds) and 0 < snap.seconds <= 600
    assert server.feedback.dropped == 0  # error replies coalesce per (kind, sender): no backlog
