"""Run in a fresh process with ENABLE_TORCH_COMPILE=1 (tests/test_compile.py); prints one JSON line.

stable-audio-tools decides at import time whether TransformerBlock.forward is
compiled, so this cannot share a process with the eager tests.
"""

from __future__ import annotations

import json
import os

import torch
from torch._dynamo.utils import counters

from steerbridge.engine import Steering, SteeringTerm, load_model
from steerbridge.engine.runtime.steering import SteeringHandle
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta


def main() -> None:
    assert os.environ.get("ENABLE_TORCH_COMPILE") == "1"
    model = load_model("tiny")
    adapter = model.adapter
    d = model.site_dim("cross_attn")
    g = torch.Generator().manual_seed(0)

    def vec(seed: int) -> ConceptVector:
        g.manual_seed(seed)
        return ConceptVector({1: torch.randn(d, generator=g), 2: torch.randn(d, generator=g)},
                             VectorMeta(concept=f"v{seed}", site="cross_attn", method="test",
                                        fingerprint=model.fingerprint))

    cond = adapter.encode("bright synth", seconds=1.0)
    x = torch.randn(1, model.model.io_channels, adapter.latent_length(1.0), generator=g)
    t = torch.tensor([0.5])

    def forward() -> torch.Tensor:
        adapter.gate.before_forward(rows=2, cfg_active=True)
        with torch.inference_mode():
            return adapter.model.model(x, t, cfg_scale=6.0, batch_cfg=True, **cond).clone()

    def eager() -> torch.Tensor:
        with torch.compiler.set_stance("force_eager"):
            return forward()

    plain = forward()
    handle = SteeringHandle(adapter).attach()
    handle.set(Steering((SteeringTerm(vec(1), 2.0),)))
    steered = forward()
    graphs_after_warmup = counters["stats"]["unique_graphs"]
    ref = eager()
    diffs = [float((steered - ref).abs().max())]
    close = [bool(torch.allclose(steered, ref, rtol=1e-5, atol=1e-5))]
    for alpha, seed in ((3.0, 1), (-1.0, 1), (2.0, 2), (0.5, 3)):  # alpha and vector changes, in place
        handle.set(Steering((SteeringTerm(vec(seed), alpha),)))
        out, ref = forward(), eager()
        diffs.append(float((out - ref).abs().max()))
        close.append(bool(torch.allclose(out, ref, rtol=1e-5, atol=1e-5)))
    recompiles = counters["stats"]["unique_graphs"] - graphs_after_warmup
    handle.detach()
    print(json.dumps({
        "compiled_graphs": graphs_after_warmup,
        "steering_changes_output": float((steered - plain).abs().max()),
        "max_compiled_vs_eager": max(diffs),
        "compiled_allclose_eager": all(close),
        "recompiles_after_alpha_or_vector_change": recompiles,
        "detached_equals_plain": bool(torch.equal(forward(), plain)),
    }))


if __name__ == "__main__":
    main()
