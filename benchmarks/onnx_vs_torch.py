"""Time per loop: torch eager vs the onnxruntime backend, side by side in one run.

Each model is exported to a temporary folder first (timed, with the parity
check), then steered renders of one loop alternate torch, onnx, torch, ... on
the same model object (``use_backend``), so drift in machine load hits both
alike; ratios use the medians. Both backends get the same thread budget
(``--threads``: torch.set_num_threads and ORT's intra-op threads).

Models: ``tiny`` (engine/configs/tiny.json), ``demo`` (the embedded demo model
when engine/models/demo/model.safetensors exists, otherwise ``demo_arch``: the
demo config with random weights, same architecture and cost) or a model folder.

Where time goes is split from the progress callback: ``sample`` runs from the
start of the render to the last diffusion step (prompt encoding included, a
few ms), ``decode`` is the rest (the pretransform, torch in both backends).

    .venv/bin/python benchmarks/onnx_vs_torch.py [--models tiny,demo] [--rounds 5] [--threads 1]

Headline figures are printed last, one per line, as `name: value`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from steerbridge.engine import RenderRequest, Steering, SteeringTerm
from steerbridge.engine.runtime.render import SteerableModel
from steerbridge.engine.runtime.source import DEMO_DIR, build_random, load_source
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta


def load(name: str) -> tuple[str, SteerableModel]:
    if name == "demo" and not (DEMO_DIR / "model.safetensors").exists():
        import steerbridge.engine.demo.model as demo  # registers the demo's components

        print("demo: engine/models/demo/model.safetensors not found; timing the demo architecture with "
              "random weights (demo_arch)")
        return "demo_arch", SteerableModel(build_random(json.loads(demo.CONFIG_PATH.read_text()), name="demo_arch"))
    return Path(name).name, SteerableModel(load_source(name))


def steering_for(model: SteerableModel) -> Steering:
    """A two-layer cross-attention vector: the live set-up (wrappers resident, offsets non-zero)."""
    g = torch.Generator().manual_seed(1)
    d = model.site_dim("cross_attn")
    layers = (model.num_layers // 2 - 1, model.num_layers // 2)
    vec = ConceptVector({l: torch.randn(d, generator=g) * 0.1 for l in layers},
                        VectorMeta(concept="bench", site="cross_attn", method="random", fingerprint=model.fingerprint))
    return Steering((SteeringTerm(vec, 1.0),))


def timed_render(model: SteerableModel, req: RenderRequest, steering: Steering) -> tuple[float, float]:
    """(total, sample) seconds for one render; decode = total - sample."""
    last = [0.0]
    t0 = time.perf_counter()
    model.render(req, steering=steering, progress=lambda done, total: last.__setitem__(0, time.perf_counter()))
    return time.perf_counter() - t0, last[0] - t0


def measure(name: str, *, rounds: int, steps: int | None, seconds: float) -> tuple[str, dict[str, float]]:
    from steerbridge.engine.onnx.export import export_denoiser

    label, model = load(name)
    steps = steps or int(model.config.get("steerbridge", {}).get("steps", 8))
    cfg = float(model.config.get("steerbridge", {}).get("cfg_scale", 6.0))
    req = RenderRequest(f"{label} benchmark loop", seed=3, seconds=seconds, steps=steps, cfg_scale=cfg)
    steering = steering_for(model)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export = export_denoiser(model, tmp, seconds=seconds)
        print(f"{label}: exported in {export.export_s:.1f}s ({export.size_bytes / 1e6:.1f} MB), parity "
              + ", ".join(f"{k} {v:.2g}" for k, v in export.spec.parity.items()))
        times: dict[str, list[tuple[float, float]]] = {"torch": [], "onnx": []}
        for backend in times:  # warm-up: allocations, ORT arenas, caches
            model.use_backend(backend, onnx_dir=tmp)
            timed_render(model, req, steering)
        for _ in range(rounds):
            for backend in times:
                model.use_backend(backend, onnx_dir=tmp)
                times[backend].append(timed_render(model, req, steering))
    med = {b: (statistics.median(t for t, _ in v), statistics.median(s for _, s in v)) for b, v in times.items()}
    for b, (total, sample) in med.items():
        print(f"{label} {b:5s}: loop median {total:.3f}s (sample {sample:.3f}s, decode {total - sample:.3f}s) over "
              f"{rounds} alternating renders, {steps} steps, cfg {cfg}, {seconds}s audio, steered")
    return label, {"torch_loop_s": med["torch"][0], "onnx_loop_s": med["onnx"][0],
                   "onnx_speedup": med["torch"][0] / med["onnx"][0],
                   "onnx_sample_speedup": med["torch"][1] / med["onnx"][1],
                   "onnx_decode_share": (med["onnx"][0] - med["onnx"][1]) / med["onnx"][0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="tiny,demo", help="comma-separated: tiny, demo, or model folders")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, help="diffusion steps (default: the model's, else 8)")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=1, help="threads for torch and ORT alike (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)  # ORT's default follows torch's setting
    results = dict(measure(n.strip(), rounds=args.rounds, steps=args.steps, seconds=args.seconds)
                   for n in args.models.split(","))
    for label, r in results.items():
        for key in ("torch_loop_s", "onnx_loop_s", "onnx_sample_speedup", "onnx_decode_share", "onnx_speedup"):
            print(f"{key}_{label}: {r[key]:.3f}")


if __name__ == "__main__":
    main()
