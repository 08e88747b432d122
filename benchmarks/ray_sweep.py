"""A sweep on Ray: 2 actors vs 1 (speed-up) and what one Ray task costs, side by side in one run.

One local Ray instance (num_cpus=2, offline, usage reporting off). The sweep is the
benchmark's own evaluation task (``render_item``: one tiny-model render each, distinct
seeds), run three ways over the same items: in this process (``LocalPool``), on one Ray
actor, on two. The outputs are checked to be identical across the three. Per-task
overhead is measured directly with a task that does nothing (Ray's round trip alone,
the headline), and as (one-actor time - local time) / renders, which on a busy machine is
within the render-time noise.

    .venv/bin/python benchmarks/ray_sweep.py [--renders 16] [--seconds 2] [--steps 8] [--noops 200]

On a machine with 2 cores the ideal speed-up is 2; other work on the machine lowers it.
Headline figures are printed last, one per line, as `name: value`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from steerbridge import engine
from steerbridge.engine.cluster.pool import LocalPool
from steerbridge.engine.cluster.ray_pool import RayPool, import_ray
from steerbridge.engine.evaluation.bench import RenderItem, render_item


def noop(model: object, item: int) -> int:
    return item


def timed(pool: object, fn: object, items: list) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = pool.map(fn, items)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--renders", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--noops", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    ray = import_ray()
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    start_s = time.perf_counter() - t0
    model = engine.load_model("tiny")
    items = [RenderItem(engine.RenderRequest(prompt="warm pad with slow chords", seed=s, seconds=args.seconds,
                                          steps=args.steps)) for s in range(args.renders)]
    try:
        local_s, local = timed(LocalPool(model), render_item, items)
        print(f"local: {local_s:.2f} s", file=sys.stderr)
        results = {}
        for actors in (1, 2):
            pool = RayPool("tiny", fingerprint=model.fingerprint, actors=actors)
            try:
                timed(pool, render_item, items[:actors])  # warm-up: first render in each actor
                results[actors] = timed(pool, render_item, items)
                if actors == 1:
                    noop_s, _ = timed(pool, noop, list(range(args.noops)))
            finally:
                pool.close()
            print(f"{actors} actor(s): {results[actors][0]:.2f} s", file=sys.stderr)
    finally:
        ray.shutdown()
    for actors, (_, out) in results.items():
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(local, out)), f"{actors} actor(s): outputs differ"
    one, two = results[1][0], results[2][0]
    print(f"\n{args.renders} renders of {args.seconds:g} s, {args.steps} steps (tiny model); outputs identical "
          "local / 1 actor / 2 actors")
    print(f"{'run':<14}{'total s':>9}{'per render ms':>15}")
    for name, secs in (("local", local_s), ("ray 1 actor", one), ("ray 2 actors", two)):
        print(f"{name:<14}{secs:>9.2f}{secs / args.renders * 1000:>15.1f}")
    print(f"ray_start_s: {start_s:.1f}")
    print(f"speedup_2_actors_vs_1: {one / two:.2f}")
    print(f"one_actor_minus_local_ms_per_render: {(one - local_s) / args.renders * 1000:.1f}")
    print(f"per_task_overhead_ms: {noop_s / args.noops * 1000:.2f}")


if __name__ == "__main__":
    main()
