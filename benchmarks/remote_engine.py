"""Exact-render latency through a remote engine (loopback) vs the in-process engine, side by side.

The model: the tiny stable-audio-tools config (random weights) at **44.1 kHz stereo**,
saved as a model folder, so a 4 s loop is the size a Stable Audio Open loop is on the
wire (2 x 176,400 float32 = 1.41 MB). The server is a real `steerbridge engine-server`
process on 127.0.0.1; the in-process engine is `InProcessClient` in this process.

Renders alternate (in-process, remote, ...) so load drift hits both alike. For each
render, "overhead" = the client's wall time from submit to the job's result minus the
engine's own render time (``RenderResult.render_s``, measured around the model call on
whichever side rendered): what the path around the model costs, which is what the
network adds. Medians are reported; bytes per loop are what the client received for
one job (progress, the loop's frame, done, all framing and HMACs).

    .venv/bin/python benchmarks/remote_engine.py [--repeats 7] [--steps 2] [--seconds 4]

Headline figures are printed last, one per line, as `name: value`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from steerbridge.bridge.engine_link.client import EngineClient, InProcessClient
from steerbridge.bridge.engine_link.jobs import RenderJob
from steerbridge.bridge.engine_link.remote import RemoteClient
from steerbridge.bridge.engine_link.wire import load_token, write_new_token

RATE = 44100


def make_model_folder(folder: Path) -> Path:
    """The tiny config at 44.1 kHz with seeded random weights, as a model folder."""
    from safetensors.torch import save_file

    from steerbridge.engine.runtime.source import TINY_CONFIG, build_random

    config = json.loads(TINY_CONFIG.read_text())
    config["sample_rate"] = RATE
    loaded = build_random(config, seed=0, name="tiny-44k")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_config.json").write_text(json.dumps(config, indent=1))
    save_file({k: v.contiguous() for k, v in loaded.model.state_dict().items()}, folder / "model.safetensors")
    return folder


def timed(client: EngineClient, job: RenderJob) -> tuple[float, float, int]:
    """(wall s, engine render s, bytes received) for one job."""
    before = getattr(client, "bytes_received", 0)
    t0 = time.perf_counter()
    (result,) = client.submit(job).future.result(timeout=600).results
    wall = time.perf_counter() - t0
    return wall, result.render_s, getattr(client, "bytes_received", 0) - before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="steerbridge-remote-bench-"))
    folder = make_model_folder(tmp / "model")
    token = write_new_token(tmp / "engine.token")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    server = subprocess.Popen([sys.executable, "-m", "steerbridge.bridge", "engine-server", "--model", str(folder),
                               "--bind", "tcp://127.0.0.1:0", "--token-file", str(token), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    local = InProcessClient(str(folder))
    remote = None
    try:
        address = json.loads(server.stdout.readline())["address"]
        local.start()
        remote = RemoteClient(address, key=load_token(token))
        info = remote.start()
        assert info.sample_rate == RATE and info.fingerprint == local.info.fingerprint
        job = RenderJob(prompt="warm pad with slow chords", seed=3, seconds=args.seconds, steps=args.steps)
        timed(local, job), timed(remote, job)  # warm-up: first-call costs on both sides
        rows: dict[str, list[tuple[float, float, int]]] = {"in-process": [], "remote": []}
        for i in range(args.repeats):
            rows["in-process"].append(timed(local, job))
            rows["remote"].append(timed(remote, job))
            print(f"[{i + 1}/{args.repeats}] in-process {rows['in-process'][-1][0] * 1000:.1f} ms, "
                  f"remote {rows['remote'][-1][0] * 1000:.1f} ms", file=sys.stderr)
    finally:
        if remote is not None:
            remote.close()
        local.close()
        server.terminate()
        server.wait(timeout=30)
    frames = int(round(args.seconds * RATE))
    print(f"\nloop: {args.seconds:g} s, {RATE} Hz, {info.channels} ch = {frames * info.channels * 4:,} bytes "
          f"of float32; {args.steps} steps; {args.repeats} renders each, medians")
    print(f"{'engine':<12}{'wall ms':>10}{'render ms':>11}{'overhead ms':>13}")
    med = {}
    for name, vals in rows.items():
        wall = statistics.median(v[0] for v in vals) * 1000
        render = statistics.median(v[1] for v in vals) * 1000
        over = statistics.median((v[0] - v[1]) for v in vals) * 1000
        med[name] = over
        print(f"{name:<12}{wall:>10.1f}{render:>11.1f}{over:>13.1f}")
    bytes_per_loop = statistics.median(v[2] for v in rows["remote"])
    print(f"remote_overhead_ms_per_loop: {med['remote'] - med['in-process']:.1f}")
    print(f"inprocess_overhead_ms: {med['in-process']:.1f}")
    print(f"remote_overhead_ms: {med['remote']:.1f}")
    print(f"bytes_per_loop: {bytes_per_loop:.0f}")
    print(f"bytes_per_loop_over_audio: {bytes_per_loop / (frames * info.channels * 4):.4f}")


if __name__ == "__main__":
    main()
