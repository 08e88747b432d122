"""The demo model's render time at the preset's settings vs the undistilled teacher's, side by side in one run.

    .venv/bin/python benchmarks/demo_speed.py [--repeats 7] [--out docs/demo-model]

The shipped demo model is a distilled student (4 Euler steps, guidance built
in, Griffin-Lim 16 iterations). What it saves is the teacher's sampling work:
8 steps with a classifier-free-guidance batch of two rows and 32 Griffin-Lim
iterations. Both settings run on the same architecture, so the time is the
same whatever the weights; they alternate (preset, teacher, preset, ...) so a
change in machine load hits both alike, and the ratio uses the medians. The
absolute times move with the machine; the ratio is the figure to quote.
Prints ``name: value`` lines and writes ``speed.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from steerbridge.bridge.engine_link.jobs import render_job_for
from steerbridge.bridge.engine_link.worker import JobRunner
from steerbridge.bridge.presets.model import load_preset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo_acceptance import render  # noqa: E402  (sibling script: the bridge's own render path)

TEACHER = {"steps": 8, "cfg_scale": 5.0, "griffin_lim_iters": 32}  # the settings the student was distilled from


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", type=Path, default=Path("presets/demo.toml"))
    ap.add_argument("--repeats", type=int, default=7, help="timed renders per setting")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("out/speed"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = load_preset(args.preset)
    runner = JobRunner(preset.model_source(), device=preset.model.device, backend="torch")
    runner.model.detach_steering()
    codec = runner.model.model.pretransform
    own_iters = codec.iters
    job = render_job_for(preset, {}, seed=4321, seconds=args.seconds)
    settings = {"preset": (job, own_iters),
                "teacher": (dataclasses.replace(job, steps=TEACHER["steps"], cfg_scale=TEACHER["cfg_scale"]),
                            TEACHER["griffin_lim_iters"])}
    times: dict[str, list[float]] = {name: [] for name in settings}
    for i in range(args.repeats + 1):  # the first round warms up
        for name, (j, iters) in settings.items():
            codec.iters = iters
            t0 = time.perf_counter()
            render(runner, j)
            if i:
                times[name].append(time.perf_counter() - t0)
    codec.iters = own_iters
    med = {name: statistics.median(t) for name, t in times.items()}
    result = {"command": " ".join(["benchmarks/demo_speed.py", *(sys.argv[1:] if argv is None else argv)]),
              "threads": args.threads, "loop_s": args.seconds, "load_average": list(os.getloadavg()),
              "preset": {"steps": job.steps, "cfg_scale": job.cfg_scale, "griffin_lim_iters": own_iters,
                         "times_s": times["preset"], "median_s": med["preset"]},
              "teacher": {**TEACHER, "times_s": times["teacher"], "median_s": med["teacher"]},
              "speedup": med["teacher"] / med["preset"]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(result, indent=1))
    print(f"preset_render_s: {med['preset']:.3f}")
    print(f"teacher_settings_render_s: {med['teacher']:.3f}")
    print(f"preset_realtime_factor: {args.seconds / med['preset']:.1f}")
    print(f"speedup: {result['speedup']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
