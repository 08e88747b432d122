"""Scene ready: after a /steer/prompt change, how long until every knob is responsive again.

A real `Session` (the demo model in a worker process, the null sink's clock,
OSC on 127.0.0.1) plays a demo-preset copy with 2, 6, 12 and 16 knobs (the
demo knobs repeated: benchmarks/_presets.py). Once the first scene plays, a
new prompt goes out over OSC; the clock starts. A knob is *responsive* when
its neighbouring stops along its axis (the two around its value, or beside
the stop it sits on) are rendered for the new scene, so a move either way is
heard at once as a crossfade; the scene is ready when the exact render and
every knob's neighbours have landed (``2 * K + 1`` renders at most).

    .venv/bin/python benchmarks/scene_ready.py [--knobs 2 6 12 16] [--seconds 4] [--steps 8] [--engine-threads N]

The worker renders with the torch threads `serve` gives it (every core unless
``--engine-threads``; set in the worker, so an ``OMP_NUM_THREADS=1`` in the
shell no longer slows it down as it did before: figures measured that way
understate the live engine by about 2x on a 2-core machine). The scene is
rendered in the scheduler's order: the exact loop, then each knob's two
neighbouring stops, most recently moved knob first; the old scene's render
in flight is cancelled at the prompt change. Renders run one at a time, so
ready time is about ``(2 * K + 1)`` render times: linear in the knob count.

Headline figures are printed last, one per line, as `name: value` (seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _presets import knob_preset
from pythonosc.udp_client import SimpleUDPClient

from steerbridge.bridge.engine_link.jobs import RenderResult
from steerbridge.bridge.engine_link.worker import render_threads
from steerbridge.bridge.live.axes import axis_plan
from steerbridge.bridge.live.session import Session, SessionOptions

NEW_PROMPT = "dark techno with a rolling bassline"


def needed(session: Session) -> list[tuple[float, ...]]:
    """The points that make every knob responsive for the state of the moment."""
    snap = session.state.snapshot()
    knobs = snap.preset.knobs
    values, alphas = snap.values(), snap.alphas()
    names = [k.name for k in knobs]
    return [p.alphas for p in axis_plan(knobs, [values[n] for n in names], [alphas[n] for n in names],
                                        depth="near")]


def ready_time(path: Path, *, timeout: float, engine_nice: int | None,
               engine_threads: int | None) -> tuple[float, int, int, float]:
    """(seconds until ready, renders needed, renders completed meanwhile, mean render s) for the preset."""
    options = SessionOptions(output="null", osc="127.0.0.1:0", midi=None, engine="worker", grid="full",
                             progress=False, engine_nice=engine_nice, engine_threads=engine_threads)
    renders: list[float] = []
    with Session(path, options=options, say=lambda msg: print(msg, file=sys.stderr)) as session:
        session.start(prerender=False)
        session.client.add_listener(lambda e: renders.append(e.render_s) if isinstance(e, RenderResult) else None)
        deadline = time.monotonic() + 300
        while session.bank.latest is None and time.monotonic() < deadline:  # the first scene plays
            time.sleep(0.05)
        osc = SimpleUDPClient(*session.surfaces.osc.address)
        done0 = session.scheduler.stats().completed
        start = time.perf_counter()
        osc.send_message("/steer/prompt", NEW_PROMPT)
        want = needed(session)
        while time.perf_counter() - start < timeout:
            bank = session.bank.latest
            if bank is not None and NEW_PROMPT in bank.scene and all(p in bank.points for p in want):
                took = time.perf_counter() - start
                return took, len(want), session.scheduler.stats().completed - done0, _mean(renders)
            time.sleep(0.01)
        return float("inf"), len(want), session.scheduler.stats().completed - done0, _mean(renders)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--knobs", type=int, nargs="+", default=[2, 6, 12, 16])
    parser.add_argument("--seconds", type=float, default=None, help="loop length (default: the demo preset's)")
    parser.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the demo preset's)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--engine-nice", type=int, default=None,
                        help="renice the worker (serve's default is 19); default here: leave it at this "
                             "process's priority, so a shared machine's other jobs do not starve it")
    parser.add_argument("--engine-threads", type=int, default=None,
                        help="torch threads in the worker (default: every core, as serve does)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="steerbridge-scene-ready-"))
    results = {}
    for count in args.knobs:
        preset = knob_preset(count, steps=args.steps, seconds=args.seconds, save_to=folder / f"k{count}.toml")
        seconds, renders, completed, render_s = ready_time(preset.path, timeout=args.timeout,
                                                           engine_nice=args.engine_nice,
                                                           engine_threads=args.engine_threads)
        results[count] = seconds
        print(f"{count:2d} knobs: ready {seconds:6.2f} s after the prompt change; {renders} renders needed "
              f"(exact + neighbours), {completed} completed meanwhile; {render_s:.2f} s per render",
              flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; worker torch threads "
          f"{render_threads(args.engine_threads)}; demo model, loops of "
          f"{args.seconds or 'the preset'} s, {args.steps or 'the preset'} steps")
    for count, seconds in results.items():
        print(f"scene_ready_s_{count}_knobs: {seconds:.2f}")
    if len(results) > 1:
        lo, hi = min(results), max(results)
        print(f"scene_ready_ratio_{hi}_to_{lo}_knobs: {results[hi] / results[lo]:.2f} (knob ratio {hi / lo:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
