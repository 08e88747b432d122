"""Underruns while the knobs sweep and the worker renders, next to an idle baseline.

A real `Session` (tiny model in a worker process) plays to the chosen output
(default: PortAudio, which is JACK's dummy driver on CI; jackd runs with
--no-realtime there, so this is the non-real-time figure). Phase 1: idle
playback. Phase 2: the mood knob sweeps back and forth over OSC at 50
messages/s; every move makes the scheduler cancel and re-render the exact
loop in the worker. Counted per phase:

- underruns: blocks the player had nothing to play (zero-filled);
- xruns: blocks the driver reported late (PortAudio output underflow) or the
  null clock fell a whole block behind.

    .venv/bin/python benchmarks/sweep_underruns.py [--seconds 20 | --long] [--output default|null]

Headline figures are printed last, one per line, as `name: value`.
"""

from __future__ import annotations

import argparse
import math
import os
import time

from _live import add_session_args, start_session
from pythonosc.udp_client import SimpleUDPClient


def counts(session) -> tuple[int, int, int]:
    return session.player.stats().underruns, session.sink.xruns, session.scheduler.stats().completed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_session_args(parser)
    parser.add_argument("--seconds", type=float, default=20.0, help="sweep duration (default: %(default)s)")
    parser.add_argument("--long", action="store_true", help="sweep for 60 s (the issue's figure)")
    parser.add_argument("--rate", type=float, default=50.0, help="OSC knob messages per second")
    args = parser.parse_args()
    sweep_s = 60.0 if args.long else args.seconds
    idle_s = min(10.0, sweep_s / 2)
    session = start_session(args, grid="full")
    try:
        host, port = session.surfaces.osc.address
        client = SimpleUDPClient(host, port)
        time.sleep(0.5)
        u0, x0, r0 = counts(session)
        time.sleep(idle_s)
        u1, x1, r1 = counts(session)
        start = time.perf_counter()
        sent = 0
        while (now := time.perf_counter() - start) < sweep_s:
            client.send_message("/steer/knob/mood", 0.5 + 0.5 * math.sin(2 * math.pi * now / 4.0))
            sent += 1
            time.sleep(max(0.0, sent / args.rate - (time.perf_counter() - start)))
        u2, x2, r2 = counts(session)
        status, sched = session.status(), session.scheduler.stats()
    finally:
        session.close()
    print(f"output: {status.output}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"idle {idle_s:.0f} s: underruns {u1 - u0}, xruns {x1 - x0}")
    print(f"sweep {sweep_s:.0f} s: {sent} OSC moves, {r2 - r1} renders finished, "
          f"{sched.submitted} submitted, {sched.cancelled} cancelled in all")
    print(f"idle_xruns_per_10s: {(x1 - x0) * 10 / idle_s:.1f}")
    print(f"sweep_underruns: {u2 - u1}")
    print(f"sweep_xruns: {x2 - x1}")
    print(f"sweep_xruns_per_10s: {(x2 - x1) * 10 / sweep_s:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
