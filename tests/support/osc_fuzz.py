"""Malformed OSC traffic for a running :class:`steerbridge.bridge.control.osc.server.OscServer`, over loopback UDP.

Used by ``tests/test_fuzz_osc.py`` (a few thousand packets) and
``benchmarks/fuzz_osc.py`` (100,000 and more). :func:`malformed_packet` draws
one datagram of a named family (bad type tags, truncation, huge strings,
NaN/inf, unknown addresses, future-timetag bundles, hostile bundle sizes,
wildcard bombs, bit flips, random bytes); :func:`run_fuzz` sends them and,
every ``probe_every`` packets, a valid ``/steer/seed`` whose ``/steer/state/seed``
answer proves the server still serves. Sending is bounded in count and time.

Only ever talks to the server's own address, which must be loopback.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

__all__ = ["FAMILIES", "FuzzReport", "malformed_packet", "run_fuzz", "PROBE_BASE"]

PROBE_BASE = 2_000_000_000  # probe seeds live above this; fuzz packets never send valid seeds there
_ADDRESSES = ("/steer/knob/mood", "/steer/alpha/tempo", "/steer/prompt", "/steer/seconds", "/steer/preset",
              "/steer/learn", "/steer/play", "/steer/knob/*", "/steer/subscribe")


def _pad(raw: bytes) -> bytes:
    raw += b"\x00"
    return raw + b"\x00" * (-len(raw) % 4)


def _valid(rng: random.Random) -> bytes:
    address = rng.choice(_ADDRESSES[:5])
    arg: object = rng.choice([rng.random(), "lofi", rng.randint(0, 9)])
    return build_msg(address, [arg]).dgram


def _bad_type_tag(rng: random.Random) -> bytes:
    tags = rng.choice([b"x", b"fS", b"c", b"f[", b"]f", b"[[[[[[f]]]]]]", b"I", bytes([rng.randint(33, 126)]) * 3])
    prefix = b"" if rng.random() < 0.2 else b","  # sometimes no leading comma at all
    return _pad(rng.choice(_ADDRESSES).encode()) + _pad(prefix + tags) + b"\x00" * 8


def _truncated(rng: random.Random) -> bytes:
    full = build_msg(rng.choice(_ADDRESSES), [1.0, "some text", 7]).dgram
    return full[:rng.randint(1, len(full) - 1)]


def _huge_string(rng: random.Random) -> bytes:
    size = rng.choice([20_000, 40_000, 60_000])  # over the 16 KB limit, under the 64 KB datagram limit
    return _pad(b"/steer/prompt") + _pad(b",s") + _pad(b"a" * size)


def _nan_inf(rng: random.Random) -> bytes:
    value = rng.choice([float("nan"), float("inf"), float("-inf")])
    if rng.random() < 0.5:
        return _pad(b"/steer/knob/mood") + _pad(b",d") + struct.pack(">d", value)
    return _pad(rng.choice([b"/steer/knob/mood", b"/steer/seconds", b"/steer/alpha/tempo"])) \
        + _pad(b",f") + struct.pack(">f", value)


def _unknown_address(rng: random.Random) -> bytes:
    name = "".join(rng.choice("abcxyz_-/") for _ in range(rng.randint(1, 30)))
    return build_msg(f"/steer/{name}/q", [0.5]).dgram


def _future_bundle(rng: random.Random) -> bytes:
    timetag = struct.pack(">Q", rng.choice([(2**32 - 1) << 32, (4_000_000_000 << 32) | 5, 2**64 - 1]))
    inner = _valid(rng)
    return b"#bundle\x00" + timetag + struct.pack(">i", len(inner)) + inner


def _hostile_bundle(rng: random.Random) -> bytes:
    choice = rng.randrange(4)
    head = b"#bundle\x00" + b"\x00" * 7 + b"\x01"
    if choice == 0:  # size -4: python-osc re-reads the same element forever
        return head + struct.pack(">i", -4)
    if choice == 1:
        return head + struct.pack(">i", rng.choice([-(2**31), 2**31 - 1, 4096]))
    if choice == 2:  # deep nesting
        packet = build_msg("/steer/play", []).dgram
        for _ in range(rng.randint(5, 200)):
            packet = head + struct.pack(">i", len(packet)) + packet
        return packet
    inner = b"garbage!"
    return head + struct.pack(">i", len(inner)) + inner


def _wildcard_bomb(rng: random.Random) -> bytes:
    return build_msg("/steer/knob/" + "*" * rng.randint(9, 60) + "z", [0.5]).dgram


def _bad_utf8(rng: random.Random) -> bytes:
    return _pad(b"/steer/prompt") + _pad(b",s") + _pad(bytes([0xFF, 0xFE, rng.randint(0x80, 0xBF)]))


def _bit_flip(rng: random.Random) -> bytes:
    data = bytearray(_valid(rng))
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def _random_bytes(rng: random.Random) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))


FAMILIES: dict[str, Callable[[random.Random], bytes]] = {
    "bad_type_tag": _bad_type_tag, "truncated": _truncated, "huge_string": _huge_string, "nan_inf": _nan_inf,
    "unknown_address": _unknown_address, "future_bundle": _future_bundle, "hostile_bundle": _hostile_bundle,
    "wildcard_bomb": _wildcard_bomb, "bad_utf8": _bad_utf8, "bit_flip": _bit_flip, "random_bytes": _random_bytes,
}


def malformed_packet(rng: random.Random) -> tuple[str, bytes]:
    family = rng.choice(list(FAMILIES))
    return family, FAMILIES[family](rng)


@dataclass
class FuzzReport:
    sent: int = 0
    by_family: dict[str, int] = field(default_factory=dict)
    probes: int = 0
    probes_answered: int = 0
    max_probe_s: float = 0.0
    elapsed_s: float = 0.0


def run_fuzz(address: tuple[str, int], *, packets: int, seed: int = 0, probe_every: int = 100,
             probe_timeout_s: float = 5.0, max_s: float = 600.0) -> FuzzReport:
    """Send ``packets`` malformed datagrams (at most ``max_s`` seconds) with answered probes in between."""
    if not ipaddress.ip_address(address[0]).is_loopback:
        raise ValueError(f"run_fuzz only sends to loopback addresses, not {address[0]}")
    rng, report = random.Random(seed), FuzzReport()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)  # error replies come back too
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    answered: set[int] = set()
    seen = threading.Condition()
    stop = threading.Event()

    def receive() -> None:
        while not stop.is_set():
            try:
                msg = OscMessage(sock.recv(65536))
            except (socket.timeout, OSError):
                continue
            if msg.address.endswith("/state/seed") and msg.params and msg.params[0] >= PROBE_BASE:
                with seen:
                    answered.add(msg.params[0])
                    seen.notify_all()

    reader = threading.Thread(target=receive, name="osc-fuzz-reader", daemon=True)
    reader.start()
    start = time.monotonic()
    try:
        sock.sendto(build_msg("/steer/subscribe", []).dgram, address)
        for i in range(packets):
            if time.monotonic() - start > max_s:
                break
            family, data = malformed_packet(rng)
            sock.sendto(data, address)
            report.sent += 1
            report.by_family[family] = report.by_family.get(family, 0) + 1
            if (i + 1) % probe_every == 0:
                value = PROBE_BASE + report.probes
                report.probes += 1
                t0 = time.monotonic()
                sock.sendto(build_msg("/steer/seed", [value]).dgram, address)
                with seen:
                    if seen.wait_for(lambda: value in answered, timeout=probe_timeout_s):
                        report.probes_answered += 1
                        report.max_probe_s = max(report.max_probe_s, time.monotonic() - t0)
    finally:
        report.elapsed_s = time.monotonic() - start
        stop.set()
        reader.join(timeout=2)
        sock.close()
    return report
