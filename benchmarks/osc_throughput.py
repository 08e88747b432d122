"""OSC messages per second the live bridge handles without loss.

A real `Session` (tiny model in a worker process, audio to the chosen
output) receives `/steer/knob/mood f` messages over loopback UDP from a
separate sender process (so the sender does not compete for our GIL). Every
message has a distinct value, so each one is a real change: OSC handler,
control state, the mixer's gains, the scheduler's re-plan. Handled = knob
changes the state saw from OSC; lost = sent - handled.

Phases, side by side in one run: paced sends at rising rates (2 s each), then
one flood as fast as the sender can go.

    .venv/bin/python benchmarks/osc_throughput.py [--rates 500,1000,2000,4000] [--flood 20000]

Headline figures are printed last, one per line, as `name: value`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

from _live import add_session_args, start_session

SENDER = """
import socket, sys, time
from pythonosc.osc_message_builder import OscMessageBuilder
host, port, first, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
packets = []
for i in range(first, first + count):
    b = OscMessageBuilder("/steer/knob/mood"); b.add_arg(i / 1e7, "f"); packets.append(b.build().dgram)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.perf_counter()
for n, packet in enumerate(packets):
    if rate > 0:
        wait = start + n / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
    sock.sendto(packet, (host, port))
print(time.perf_counter() - start)
"""


class Counter:
    def __init__(self) -> None:
        self.n, self.last = 0, 0.0
        self.lock = threading.Lock()

    def __call__(self, change) -> None:
        if change.kind == "knob" and change.source == "osc":
            with self.lock:
                self.n += 1
                self.last = time.perf_counter()


def send(address: tuple[str, int], first: int, count: int, rate: float) -> float:
    out = subprocess.run([sys.executable, "-c", SENDER, address[0], str(address[1]), str(first), str(count),
                          str(rate)], check=True, capture_output=True, text=True)
    return float(out.stdout)


def phase(session, counter: Counter, first: int, count: int, rate: float) -> tuple[int, float, float]:
    """Returns (handled, send seconds, handled per second)."""
    before = counter.n
    start = time.perf_counter()
    send_s = send(session.surfaces.osc.address, first, count, rate)
    deadline = time.perf_counter() + 5
    while counter.n - before < count and time.perf_counter() < deadline:
        time.sleep(0.05)  # let the queue drain
    handled = counter.n - before
    return handled, send_s, handled / max(counter.last - start, send_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_session_args(parser)
    parser.add_argument("--rates", default="500,1000,2000,4000", help="paced phases, messages/s")
    parser.add_argument("--phase-seconds", type=float, default=2.0)
    parser.add_argument("--flood", type=int, default=20000, help="messages in the flood phase")
    parser.set_defaults(output="null")
    args = parser.parse_args()
    session = start_session(args, grid="near")
    counter = Counter()
    session.state.add_listener(counter)
    results, first = [], 1
    try:
        time.sleep(0.5)
        for rate in (float(r) for r in args.rates.split(",")):
            count = int(rate * args.phase_seconds)
            handled, _, _ = phase(session, counter, first, count, rate)
            results.append((rate, count, handled))
            first += count
        flood_handled, flood_s, flood_rate = phase(session, counter, first, args.flood, 0)
        status = session.status()
    finally:
        session.close()
    print(f"output: {status.output}; underruns {status.underruns}, xruns {status.xruns}")
    for rate, count, handled in results:
        print(f"paced {rate:.0f} msg/s: {handled}/{count} handled, {count - handled} lost")
    print(f"flood: {args.flood} sent in {flood_s:.2f} s ({args.flood / flood_s:.0f} msg/s offered), "
          f"{flood_handled} handled")
    lossless = max((rate for rate, count, handled in results if handled == count), default=0)
    print(f"osc_lossless_msgs_per_s: {lossless:.0f}")
    print(f"osc_flood_handled_msgs_per_s: {flood_rate:.0f}")
    print(f"osc_flood_lost_pct: {100 * (args.flood - flood_handled) / args.flood:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
