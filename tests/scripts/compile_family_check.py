"""Steering a diffusers family's compiled denoiser (tests/test_families_compile.py); prints one JSON line.

The family's denoiser (``adapter.denoiser``: the pipeline's transformer) is
compiled in place with ``nn.Module.compile``; the steering wrappers sit inside
it. Knob moves (new alphas, new vectors) must change the output exactly as in
eager mode and cause no new graphs. Run in a fresh process so dynamo's
counters and caches start empty.
"""

from __future__ import annotations

import json
import sys

import torch
from torch._dynamo.utils import counters

from steerbridge.engine import RenderRequest, Steering, SteeringTerm, load_model
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta


def main(family: str) -> None:
    model = load_model(f"tiny:{family}")
    d = {l: model.site_dim("cross_attn", l) for l in (1, 2)}  # widths may differ per layer (a U-Net)
    g = torch.Generator()

    def vec(seed: int) -> ConceptVector:
        g.manual_seed(seed)
        return ConceptVector({l: torch.randn(d[l], generator=g) for l in (1, 2)},
                             VectorMeta(concept=f"v{seed}", site="cross_attn", method="test",
                                        fingerprint=model.fingerprint))

    req = RenderRequest(prompt="bright synth", seed=1, seconds=0.5, steps=2)
    plain = model.render(req).audio
    model.handle.attach()  # wrappers in place before compiling: the graph includes them
    model.adapter.denoiser.compile()

    def render(alpha: float, seed: int, *, eager: bool = False):
        steering = Steering((SteeringTerm(vec(seed), alpha),))
        if eager:
            with torch.compiler.set_stance("force_eager"):
                return model.render(req, steering=steering).audio
        return model.render(req, steering=steering).audio

    steered = render(2.0, 1)
    graphs = counters["stats"]["unique_graphs"]
    diffs = []
    for alpha, seed in ((2.0, 1), (3.0, 1), (-1.0, 1), (2.0, 2), (0.5, 3)):  # alpha and vector changes, in place
        out, ref = render(alpha, seed), render(alpha, seed, eager=True)
        diffs.append(float(abs(out - ref).max()))
    recompiles = counters["stats"]["unique_graphs"] - graphs
    model.detach_steering()
    print(json.dumps({"compiled_graphs": graphs, "steering_changes_output": float(abs(steered - plain).max()),
                      "max_compiled_vs_eager": max(diffs), "recompiles_after_alpha_or_vector_change": recompiles}))


if __name__ == "__main__":
    main(sys.argv[1])
