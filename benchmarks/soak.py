"""Soak: a simulated set against the live runtime, bounded and self-stopping.

Knob sweeps over OSC (real UDP on 127.0.0.1), knob moves as MIDI messages
made from the loaded preset's own bindings (a soak copy of the demo preset
with 7-bit CC, a 14-bit CC pair and NRPN all bound) through the MIDI
decoding/routing path, prompt changes and preset switches, for ``--seconds``
(default 10 minutes), against a real Session: engine worker (demo model),
render scheduler, loop cache (``--cache-mb``, LRU), player on the null
sink's paced clock. Reports underruns (goal 0), render queue depth, cache
size and RSS growth of the audio process and of the worker (goal: bounded),
and checks that the state followed the input: every knob ends at the last
value sent to it (``state_followed_input: 1``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/soak.py [--seconds 600]

Headline figures are printed last, one per line, as `name: value`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the soak harness: tests/support/

from support.soak import run_soak  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--osc-rate", type=float, default=200.0, help="OSC knob messages per second")
    parser.add_argument("--midi-rate", type=float, default=100.0, help="MIDI knob moves per second")
    parser.add_argument("--prompt-every", type=float, default=20.0, help="seconds between prompt changes")
    parser.add_argument("--preset-every", type=float, default=45.0, help="seconds between preset switches")
    parser.add_argument("--phrase", type=float, default=4.0, help="seconds of knob moves, then as long holding")
    parser.add_argument("--cache-mb", type=float, default=8.0, help="loop cache limit (small: exercises LRU eviction)")
    parser.add_argument("--loop-seconds", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    report = run_soak(args.seconds, osc_rate=args.osc_rate, midi_rate=args.midi_rate,
                      prompt_every_s=args.prompt_every, preset_every_s=args.preset_every, phrase_s=args.phrase,
                      cache_mb=args.cache_mb,
                      loop_s=args.loop_seconds, steps=args.steps,
                      say=lambda msg: print(msg, file=sys.stderr))
    for t, audio, worker in report.rss_mb[:: max(1, len(report.rss_mb) // 10)]:
        print(f"t={t:6.1f}s rss audio {audio:7.1f} MB, worker {worker:7.1f} MB", file=sys.stderr)
    for line in report.lines():
        print(line)
    for mismatch in report.knob_mismatches:
        print(f"state did not follow: {mismatch}", file=sys.stderr)
    return 0 if report.underruns == 0 and report.worker_restarts == 0 and report.followed else 1


if __name__ == "__main__":
    raise SystemExit(main())
