"""Knob -> audible latency of the live bridge, and the exact re-render time.

A real `Session` (tiny model in a worker process, the preset's stops
pre-rendered) plays to the chosen output; OSC messages go to its real UDP
server on loopback. For each message we take the time it was sent (loopback:
arrival within microseconds) and the time the audio callback started the first
block whose gains used it (`LoopPlayer.last_heard`). Audible = that plus the
output's latency (one 256-frame block, 5.3 ms, on JACK at 48 kHz).

    .venv/bin/python benchmarks/knob_latency.py [--moves 200] [--output default|null] [--blocksize 256]
        [--knobs 16]   # a preset with 16 knobs (tiny's repeated); each move turns a random one of them

Headline figures are printed last, one per line, as `name: value`.
"""

from __future__ import annotations

import argparse
import random
import threading
import time

from _live import add_session_args, percentiles, start_session
from pythonosc.udp_client import SimpleUDPClient


def measure_moves(session, client: SimpleUDPClient, moves: int) -> list[float]:
    player, rng = session.player, random.Random(1)
    names = session.preset.knob_names()
    latencies = []
    for _ in range(moves):
        before = player.seq
        value = rng.random()
        name = rng.choice(names)
        sent = time.perf_counter()
        client.send_message(f"/steer/knob/{name}", value)
        deadline = sent + 1.0
        while player.seq == before and time.perf_counter() < deadline:
            time.sleep(0.0002)  # sleep, not spin: the audio callback needs the GIL too
        target = player.seq
        while player.last_heard()[0] < target and time.perf_counter() < deadline:
            time.sleep(0.0002)
        heard = player.last_heard()
        if heard[0] >= target > before:
            latencies.append(heard[2] - sent)
        time.sleep(rng.uniform(0.015, 0.035))
    return latencies


def measure_rerender(session, client: SimpleUDPClient, repeats: int) -> list[float]:
    landed = threading.Event()
    remove = session.subscribe(lambda e: landed.set() if e.kind == "loop" and e.loop_kind == "exact" else None)
    times = []
    try:
        for i in range(repeats):
            session.scheduler.wait_idle(60)
            landed.clear()
            start = time.perf_counter()
            client.send_message("/steer/knob/mood", 0.1 + 0.8 * (i + 0.37) / repeats)  # never on a stop
            if landed.wait(60):
                times.append(time.perf_counter() - start)
    finally:
        remove()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_session_args(parser)
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--rerenders", type=int, default=3)
    args = parser.parse_args()
    session = start_session(args, grid="full")
    try:
        host, port = session.surfaces.osc.address
        client = SimpleUDPClient(host, port)
        time.sleep(0.5)
        latencies = measure_moves(session, client, args.moves)
        rerender = measure_rerender(session, client, args.rerenders)
        status = session.status()
    finally:
        session.close()
    lat = {k: v * 1000 for k, v in percentiles(latencies).items()}
    print(f"output: {status.output}")
    print(f"moves measured: {len(latencies)}/{args.moves}; underruns {status.underruns}, xruns {status.xruns}")
    print(f"knob_to_block_ms_p50: {lat['p50']:.2f}")
    print(f"knob_to_block_ms_p95: {lat['p95']:.2f}")
    print(f"knob_to_block_ms_max: {lat['max']:.2f}")
    print(f"knobs: {len(status.knobs)}")
    print(f"knob_to_audible_ms_p95: {lat['p95'] + status.latency_ms:.2f}")
    if rerender:
        print(f"exact_rerender_s: {min(rerender):.2f} (min of {len(rerender)}; loop {args.loop_seconds} s, "
              f"{args.steps} steps, tiny model)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
