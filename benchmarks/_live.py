"""Shared set-up for the live-bridge benchmarks: a tiny-model preset and a running Session.

The vector is made by a subprocess (tools/make_vectors.py --source tiny) so the
benchmark process, which plays audio, never imports torch: the same split
as `steerbridge serve`, whose engine lives in a worker process.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from steerbridge.bridge.live.session import Session, SessionOptions

__all__ = ["add_session_args", "make_preset", "start_session", "percentiles"]

ROOT = Path(__file__).resolve().parent.parent

PRESET = """\
[model]
source = "tiny"
steps = {steps}

[scene]
prompt = "lofi hip hop beat with warm piano"
seed = 1234
seconds = {seconds}

[[knob]]
name = "mood"
vector = "vectors/tiny/mood.safetensors"
alpha_min = -4.0
alpha_max = 4.0
default = 0.5
stops = {stops}
"""


def add_session_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="default",
                        help="sink: default (JACK when running) | null | wav:DIR (default: %(default)s)")
    parser.add_argument("--blocksize", type=int, default=256)
    parser.add_argument("--seconds-per-loop", type=float, default=2.0, dest="loop_seconds")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--stops", type=int, default=5)
    parser.add_argument("--in-process", action="store_true", help="render in the audio process (to compare)")
    parser.add_argument("--knobs", type=int, default=1,
                        help="knobs in the preset: 1 = mood alone; more = presets/tiny.toml's knobs repeated")


def make_preset(folder: Path, *, seconds: float, stops: int, steps: int, knobs: int = 1) -> Path:
    if knobs > 1:  # the shipped tiny vectors, repeated under new names (benchmarks/_presets.py)
        from _presets import knob_preset

        return knob_preset(knobs, base="tiny", steps=steps, seconds=seconds, save_to=folder / "bench.toml").path
    vectors = folder / "vectors" / "tiny"
    vectors.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(ROOT / "tools" / "make_vectors.py"), "--source", "tiny", "--concept", "mood",
                    "--seconds", "1", "--out", str(vectors)], check=True, capture_output=True)
    path = folder / "bench.toml"
    path.write_text(PRESET.format(seconds=seconds, stops=stops, steps=steps))
    return path


def start_session(args: argparse.Namespace, *, osc: str = "127.0.0.1:0", grid: str = "full") -> Session:
    folder = Path(tempfile.mkdtemp(prefix="steerbridge-bench-"))
    preset = make_preset(folder, seconds=args.loop_seconds, stops=args.stops, steps=args.steps,
                         knobs=getattr(args, "knobs", 1))
    options = SessionOptions(output=args.output, blocksize=args.blocksize, osc=osc, midi=None, grid=grid,
                             engine="inprocess" if args.in_process else "worker", progress=True)
    session = Session(preset, options=options)
    session.start(timeout=600)
    return session


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"mean": statistics.fmean(ordered), "p50": pick(0.5), "p95": pick(0.95), "max": ordered[-1]}
