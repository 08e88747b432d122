"""Cost of one audio block (the callback plus the mixer's work) for presets with 2, 6, 12 and 16 knobs.

No model and no clock: the real `ControlState`, `VoiceBank`, `LoopPlayer` and
`CallbackGuard` are driven block by block, single-threaded, so what is timed
is the work itself. Per block we time what the audio process spends on it:

- the callback: `CallbackGuard(LoopPlayer.process)` on a 256-frame block;
- the mixer's work when something changed since the last block: the newest
  snapshot, `VoiceBank.gains` and `LoopPlayer.set_voices` (what the
  `steerbridge-mixer` thread does on a knob move, and the scheduler's thread
  after a loop lands).

Meanwhile the knobs sweep (a move every ~2 blocks, the three most recent
knobs taking turns, every knob now and then) and renders land (an exact
render and the stops along each axis around it, one every 20 blocks: the
rate a fast engine would deliver). Resampling a landed loop (`VoiceBank.add`,
soxr) runs on the scheduler's thread in the session, so it is not counted.
Knobs are the demo preset's, repeated (benchmarks/_presets.py).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/callback_cost.py [--blocks 4000] [--knobs 2 6 12 16]

Headline figures are printed last, one per line, as `name: value`
(microseconds of this thread's CPU time, which being preempted by other
processes does not inflate; wall-clock percentiles are printed beside them;
the block period is 5333 us at 48 kHz).
"""

from __future__ import annotations

import argparse
import os
import random
import time

import numpy as np
from _presets import knob_preset

from steerbridge.bridge.audio.guard import CallbackGuard
from steerbridge.bridge.audio.player import LoopPlayer
from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.live.axes import axis_plan
from steerbridge.bridge.live.scheduler import LoopReady
from steerbridge.bridge.live.voicebank import VoiceBank

RATE, BLOCK, LOOP_S = 48000, 256, 1.0


def _ready(alphas: dict[str, float], exact: bool, audio: np.ndarray) -> LoopReady:
    return LoopReady("k", exact, None, alphas, ("scene",), 0, audio, RATE, False)


def _renders(state: ControlState, rng: np.random.Generator):
    """Endless landings: the exact render for the current state, then its axis stops (as the scheduler plans)."""
    while True:
        snap = state.snapshot()
        knobs, names = snap.preset.knobs, [k.name for k in snap.preset.knobs]
        index = {n: i for i, n in enumerate(names)}
        order = [index[n] for n in snap.recent() if snap.knobs[n].moved]
        values, alphas = snap.values(), snap.alphas()
        plan = axis_plan(knobs, [values[n] for n in names], [alphas[n] for n in names], order=order, depth="near")
        for ap in plan[:6]:  # a knob moves before the engine gets further: the next plan starts again
            audio = (rng.standard_normal((2, int(LOOP_S * RATE))) * 0.05).astype(np.float32)
            yield _ready(dict(zip(names, ap.alphas)), ap.axis is None, audio)


def run(count: int, blocks: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    preset = knob_preset(count)
    state = ControlState(preset)
    bank, player = VoiceBank(rate=RATE), LoopPlayer(rate=RATE, max_block=8192)
    guard, out = CallbackGuard(player.process), np.zeros((BLOCK, 2), np.float32)
    rng, moves = random.Random(seed), np.random.default_rng(seed)
    landings = _renders(state, moves)
    names = list(preset.knob_names())
    for _ in range(8):  # something to play: the first exact render and a few stops
        bank.add(next(landings), preset.knobs)

    def mix() -> None:  # Mixer.update (bridge/live/mixer.py)
        snap, latest = state.snapshot(), bank.latest
        gains = bank.gains(latest, snap.preset.knobs, snap.values(), snap.alphas(), snap.recent())
        if gains:
            player.set_voices(gains, scene=latest.scene)

    mix()
    costs, walls = np.empty(blocks), np.empty(blocks)
    active = names[:3]
    for b in range(blocks):
        if b % 20 == 10:
            bank.add(next(landings), preset.knobs)  # the scheduler's thread: not timed
            changed = True
        else:
            changed = False
        if rng.random() < 0.5:  # a knob move: the three most recent take turns, any knob now and then
            name = rng.choice(names) if rng.random() < 0.1 else rng.choice(active)
            if name not in active:
                active = [name, *active[:2]]
            state.set_value(name, rng.random(), source="bench")  # the OSC thread's part: not timed
            changed = True
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        if changed:
            mix()
        guard(out)
        walls[b] = (time.perf_counter_ns() - t0) / 1000.0
        costs[b] = (time.thread_time_ns() - c0) / 1000.0
        if b % 50 == 0:
            player.reap()  # housekeeping's thread: not timed
    assert guard.errors == 0 and player.stats().underruns == 0
    return costs, walls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=4000)
    parser.add_argument("--knobs", type=int, nargs="+", default=[2, 6, 12, 16])
    args = parser.parse_args()
    period_us = BLOCK / RATE * 1e6
    p99 = {}
    for count in args.knobs:
        run(count, 300)  # warm-up: imports, caches, numpy's first calls
        costs, walls = run(count, args.blocks)
        p50, p99[count] = np.percentile(costs, 50), np.percentile(costs, 99)
        print(f"{count:2d} knobs: CPU p50 {p50:6.1f} us, p99 {p99[count]:6.1f} us, max {costs.max():7.1f} us; "
              f"wall p50 {np.percentile(walls, 50):6.1f} us, p99 {np.percentile(walls, 99):7.1f} us "
              f"({args.blocks} blocks; CPU p99 = {100 * p99[count] / period_us:.1f} % "
              f"of the {period_us:.0f} us period)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall time includes being preempted "
          "by other processes; CPU time is this thread's work)")
    for count in args.knobs:
        print(f"callback_us_p99_{count}_knobs: {p99[count]:.1f}")
    print(f"callback_p99_max_pct_of_block: {100 * max(p99.values()) / period_us:.1f}")
    if len(args.knobs) > 1:
        lo, hi = min(args.knobs), max(args.knobs)
        print(f"callback_p99_ratio_{hi}_to_{lo}_knobs: {p99[hi] / p99[lo]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
