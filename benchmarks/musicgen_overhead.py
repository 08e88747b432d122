"""MusicGen: generation time per generated second, steered vs unsteered, side by side in one run.

The model is a random-weight ``MusicgenForConditionalGeneration`` (the real
transformers classes) with MusicGen small's decoder dimensions: 1024 wide, 16
heads, FFN 4096, 4 codebooks of 2048 codes, 50 frames/s at 32 kHz, and
``--layers`` decoder layers (MusicGen small has 24). The text encoder and the
EnCodec codec are small (they run once per render and are not steered); the
decoder is the autoregressive loop that steering touches.

"Steered" is the resident-server set-up with the MusicGen study's semantics:
wrappers at every layer of both sites, a unit-normalised vector injected at
every layer (One-to-All from layer 1) in both guidance branches on every
generated frame, alpha 1.25. Renders alternate (unsteered, steered, ...) so
drift in machine load hits both alike; the ratios use the medians. Wall-clock
and this process's CPU time are both measured.

    .venv/bin/python benchmarks/musicgen_overhead.py [--layers 24] [--seconds 2] [--repeats 3] [--device cpu]

Headline figures are printed last, one per line, as `name: value`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from steerbridge.engine import RenderRequest, Steering, SteeringTerm
from steerbridge.engine.adapters.musicgen_tiny import build_random
from steerbridge.engine.runtime.render import SteerableModel
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta


def musicgen_small(layers: int, device: str) -> SteerableModel:
    loaded = build_random(width=1024, layers=layers, heads=16, codebooks=4, codebook_size=2048, sample_rate=32000,
                          hop=(8, 5, 4, 4), max_positions=2048)
    return SteerableModel(loaded, device=device)


def _timed(fn, device: str) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=24, help="decoder layers (MusicGen small: 24)")
    ap.add_argument("--seconds", type=float, default=2.0, help="audio generated per render")
    ap.add_argument("--repeats", type=int, default=3, help="renders of each kind (after one warm-up each)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    model = musicgen_small(args.layers, args.device)
    d = model.site_dim("block")
    g = torch.Generator().manual_seed(0)
    v = torch.randn(d, generator=g)
    vec = ConceptVector({1: v / v.norm()}, VectorMeta(concept="c", site="block", method="bench",
                                                      fingerprint=model.fingerprint, normalized=True))
    steering = Steering((SteeringTerm(vec, 1.25, layers=tuple(range(args.layers)), one_to_all=1),), cfg_mode="both")
    req = RenderRequest(prompt="lofi hip hop beat with warm piano", seed=0, seconds=args.seconds, cfg_scale=3.0)
    frames = model.adapter.frames_for(args.seconds)
    model.render(req)  # warm-up, unsteered
    walls: dict[str, list[float]] = {"plain": [], "steered": []}
    cpus: dict[str, list[float]] = {"plain": [], "steered": []}
    model.render(req, steering=steering)  # warm-up, steered: attaches the wrappers (kept attached)
    for _ in range(args.repeats):
        for kind in ("plain", "steered"):
            # "plain" renders with the wrappers detached: the untouched transformers model. The steered
            # render attaches them again (wrappers at every layer of both sites), inside its timing.
            if kind == "plain":
                model.detach_steering()
                w, c = _timed(lambda: model.render(req), args.device)
            else:
                w, c = _timed(lambda: model.render(req, steering=steering), args.device)
            walls[kind].append(w / args.seconds)
            cpus[kind].append(c / args.seconds)
    med = {k: statistics.median(v) for k, v in walls.items()}
    cmed = {k: statistics.median(v) for k, v in cpus.items()}
    params = sum(p.numel() for p in model.adapter.parameters())
    print(f"config: MusicGen-small dims, {args.layers} decoder layers ({params / 1e6:.0f} M decoder params), "
          f"{frames} decoder calls for {args.seconds:g} s, CFG batch 2, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    for kind in ("plain", "steered"):
        print(f"{kind}: wall s per generated second {[round(x, 3) for x in walls[kind]]}, "
              f"cpu {[round(x, 3) for x in cpus[kind]]}")
    print(f"musicgen_plain_s_per_generated_s: {med['plain']:.3f}")
    print(f"musicgen_steered_s_per_generated_s: {med['steered']:.3f}")
    print(f"musicgen_ms_per_frame_plain: {1000 * med['plain'] * args.seconds / frames:.1f}")
    print(f"musicgen_steering_overhead_wall: {med['steered'] / med['plain']:.3f}x")
    print(f"musicgen_steering_overhead_cpu: {cmed['steered'] / cmed['plain']:.3f}x")


if __name__ == "__main__":
    main()
