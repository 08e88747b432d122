"""Generation time steered vs unsteered, side by side in one run.

Two model sizes, random weights (the real stable-audio-tools classes):
  tiny       — engine/configs/tiny.json
  sao-small  — Stable Audio Open Small's DiT dims (embed 1024, depth 16, 8 heads,
               cond 768) on the tiny decoder, at the sequence length of a real
               4 s SAO Small loop (44.1 kHz / 2048 = ~88 latent frames; the tiny
               decoder's ratio of 64 would make it 1,000 frames and 10x the cost)

and, with ``--family NAME`` (repeatable), a diffusers family on its published
dimensions with random weights (``FAMILY_DIMS``; fewer layers than published,
``--family-layers``, so a render takes seconds on a CPU, not minutes; the
overhead is per layer, so the ratio carries over).

"Steered" is the resident-server set-up: wrappers at every layer of both sites,
a two-layer vector active. Renders alternate (unsteered, steered, ...) so drift
in machine load hits both alike; the ratios use the medians. Both wall-clock
and this process's CPU time are measured: on a shared, busy machine the CPU
time is the steadier measure of what steering itself costs.

    .venv/bin/python benchmarks/steering_overhead.py [--repeats 5] [--steps 2] [--seconds 4] \
        [--family sao-diffusers [--family-layers 2]] [--skip-large]

Headline figures are printed last, one per line, as `name: value`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import torch

from steerbridge.engine import RenderRequest, Steering, SteeringTerm
from steerbridge.engine.runtime.render import SteerableModel
from steerbridge.engine.runtime.source import TINY_CONFIG, build_random
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta

SAO_SMALL_4S_FRAMES = 88
TINY_RATIO, TINY_RATE = 64, 16000


def sao_small_seconds() -> float:
    """Audio length whose latent on the tiny decoder has SAO Small's 4 s frame count."""
    return SAO_SMALL_4S_FRAMES * TINY_RATIO / TINY_RATE


def sao_small_config() -> dict:
    cfg = json.loads(TINY_CONFIG.read_text())
    cfg["model"]["conditioning"]["cond_dim"] = 768
    cfg["model"]["conditioning"]["configs"][0]["config"]["dim"] = 768
    dit = cfg["model"]["diffusion"]["config"]
    # project_cond_tokens: 768-d tokens are projected to 1024 before cross-attention (8 kv heads)
    dit.update(embed_dim=1024, depth=16, num_heads=8, cond_token_dim=768, global_cond_dim=1536,
               project_cond_tokens=True)
    return cfg


def _timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def family_model(family: str, layers: int) -> SteerableModel:
    """A random-weight model of ``family`` at its published width (and sequence length), ``layers`` deep."""
    if family not in FAMILY_DIMS:
        raise SystemExit(f"no published dimensions for family '{family}'; have {sorted(FAMILY_DIMS)}")
    return SteerableModel(FAMILY_DIMS[family](layers))


def _sao_diffusers(layers: int):
    from steerbridge.engine.adapters.diffusers_sao import build_tiny

    # Stable Audio Open 1.0 (diffusers): 24 heads x 64 = 1536 wide, 24 layers, a 1024-latent window. The
    # tiny decoder (32x at 8 kHz) keeps the 1024 latent frames the DiT sees.
    return build_tiny(width=1536, heads=24, layers=layers, window=1024)


def _ace_step(layers: int):
    from steerbridge.engine.adapters.ace_step import build_tiny

    # ACE-Step 1.5: 2048 wide, 24 layers, 16 heads of 128; 25 latent frames a second (48 kHz / 1920). An 800 Hz
    # tiny decoder (32x) gives the same 25 frames a second, so the DiT sees a real loop's sequence length.
    return build_tiny(width=2048, heads=16, head_dim=128, layers=layers, sample_rate=800)


def _sa3(layers: int):
    from steerbridge.engine.adapters.stable_audio_3 import build_tiny

    # Stable Audio 3 (diffusers defaults): 1536 wide, 24 layers, 24 heads, 64 memory tokens; its SAME codec makes
    # ~10.8 latent frames a second (44.1 kHz / 4096). A 344 Hz tiny decoder (32x) gives the same frame rate.
    return build_tiny(width=1536, heads=24, layers=layers, sample_rate=344, memory_tokens=64)


def _audioldm2(levels: int):
    from steerbridge.engine.adapters.audioldm2_tiny import build_published

    # AudioLDM2 (cvssp/audioldm2's U-Net): 320/640/1280/1280 channels, 2 resnets a level, cross-attention
    # [None, GPT2 768, T5 1024], 8 latent channels over 64 mel bins at 100 frames a second (16 kHz, hop 160),
    # 4x VAE: a 4 s loop is a 100 x 16 latent. --family-layers counts U-Net levels here (1..4), not layers.
    return build_published(levels=max(1, min(4, levels)))


FAMILY_DIMS = {"sao-diffusers": _sao_diffusers, "ace-step": _ace_step, "sa3": _sa3, "audioldm2": _audioldm2}


def measure(name: str, cfg: dict | SteerableModel, *, repeats: int, steps: int, seconds: float) -> tuple[float, float]:
    model = cfg if isinstance(cfg, SteerableModel) else SteerableModel(build_random(copy.deepcopy(cfg), seed=0,
                                                                                    name=name))
    g = torch.Generator().manual_seed(1)
    layers = sorted({max(0, model.num_layers // 2 - 1), model.num_layers // 2})
    # each layer's own width (a U-Net's levels differ)
    vec = ConceptVector({l: torch.randn(model.site_dim("cross_attn", l), generator=g) * 0.01 for l in layers},
                        VectorMeta(concept="bench", site="cross_attn", method="random", fingerprint=model.fingerprint))
    steering = Steering((SteeringTerm(vec, 1.0),))
    req = RenderRequest("bench loop", seed=3, seconds=seconds, steps=steps)
    model.render(req)  # warm-up both paths (allocations, caches)
    model.render(req, steering=steering)
    model.detach_steering()
    plain, steered = [], []
    handle = model.handle
    for _ in range(repeats):
        plain.append(_timed(lambda: model.render(req)))  # never-attached path
        handle.attach()
        steered.append(_timed(lambda: model.render(req, steering=steering)))
        handle.detach()
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    wall, cpu = med(steered, 0) / med(plain, 0), med(steered, 1) / med(plain, 1)
    print(f"{name}: unsteered median {med(plain, 0):.3f}s wall / {med(plain, 1):.3f}s cpu, steered median "
          f"{med(steered, 0):.3f}s wall / {med(steered, 1):.3f}s cpu over {repeats} alternating runs "
          f"({steps} steps, {seconds}s audio)")
    return wall, cpu


def measure_forward(name: str, cfg: dict, *, repeats: int, seconds: float) -> tuple[float, float]:
    """Only the DiT forward at batch 2 (CFG), the part steering touches: less noise than a render."""
    model = SteerableModel(build_random(copy.deepcopy(cfg), seed=0, name=name))
    adapter = model.adapter
    d = model.site_dim("cross_attn")
    g = torch.Generator().manual_seed(1)
    layers = (model.num_layers // 2 - 1, model.num_layers // 2)
    vec = ConceptVector({l: torch.randn(d, generator=g) * 0.01 for l in layers},
                        VectorMeta(concept="bench", site="cross_attn", method="random", fingerprint=model.fingerprint))
    cond = adapter.encode("bench loop", seconds=seconds)
    x = torch.randn(1, model.model.io_channels, adapter.latent_length(seconds), generator=g)
    t = torch.tensor([0.5])

    def forward() -> None:
        adapter.gate.before_forward(rows=2, cfg_active=True)
        with torch.inference_mode():
            adapter.model.model(x, t, cfg_scale=6.0, batch_cfg=True, **cond)

    forward()
    plain, steered = [], []
    for _ in range(repeats):
        plain.append(_timed(forward))
        model.handle.attach()
        model.handle.set(Steering((SteeringTerm(vec, 1.0),)))
        steered.append(_timed(forward))
        model.handle.detach()
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    print(f"{name} forward: unsteered median {med(plain, 0) * 1e3:.1f} ms wall / {med(plain, 1) * 1e3:.1f} ms cpu, "
          f"steered {med(steered, 0) * 1e3:.1f} ms wall / {med(steered, 1) * 1e3:.1f} ms cpu over {repeats} pairs")
    return med(steered, 0) / med(plain, 0), med(steered, 1) / med(plain, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--skip-large", action="store_true", help="only the tiny model")
    ap.add_argument("--forwards", type=int, default=20, help="DiT forward pairs at SAO Small dims (0: skip)")
    ap.add_argument("--family", action="append", default=[],
                    help=f"also measure this diffusers family at its published width ({', '.join(FAMILY_DIMS)})")
    ap.add_argument("--family-layers", type=int, default=2,
                    help="layers of the --family models (default: 2); for audioldm2, U-Net levels (1-4)")
    ap.add_argument("--family-seconds", type=float, default=4.0, help="audio length of --family renders")
    args = ap.parse_args()
    ratios = {"tiny": measure("tiny", json.loads(TINY_CONFIG.read_text()), repeats=args.repeats * 4,
                              steps=args.steps, seconds=args.seconds)}
    if not args.skip_large:
        ratios["sao_small_dims"] = measure("sao-small-dims", sao_small_config(), repeats=args.repeats,
                                           steps=args.steps, seconds=sao_small_seconds())
    if args.forwards and not args.skip_large:
        ratios["sao_small_dims_forward"] = measure_forward("sao-small-dims", sao_small_config(),
                                                           repeats=args.forwards, seconds=sao_small_seconds())
    for family in args.family:
        ratios[family.replace("-", "_")] = measure(family, family_model(family, args.family_layers),
                                                   repeats=args.repeats, steps=args.steps,
                                                   seconds=args.family_seconds)
    load = os.getloadavg()
    print(f"load average (1, 5, 15 min) on {os.cpu_count()} CPUs: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          " (timings on a loaded machine are noisy; the CPU-time ratios are the steadier)")
    for name, (wall, cpu) in ratios.items():
        print(f"steering_overhead_wall_ratio_{name}: {wall:.4f}")
        print(f"steering_overhead_cpu_ratio_{name}: {cpu:.4f}")


if __name__ == "__main__":
    main()
