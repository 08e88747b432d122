"""Prompt-blend baseline: alpha 0 is the plain render; alpha moves along (pos - neg)."""

from __future__ import annotations

import numpy as np
import torch

from steerbridge.engine.extraction.prompt_blend import blend_conditioning, render_blend
from steerbridge.engine.runtime.render import RenderRequest


def test_alpha_zero_is_the_plain_render_and_alpha_changes_it(tiny):
    req = RenderRequest(prompt="keys track", seed=1, seconds=0.5, steps=3)
    plain = tiny.render(req).audio
    kw = dict(positive="bright keys track", negative="dark keys track")
    assert np.array_equal(render_blend(tiny, req, alpha=0.0, **kw).audio, plain)
    assert not np.array_equal(render_blend(tiny, req, alpha=2.0, **kw).audio, plain)


def test_blend_is_neutral_plus_alpha_times_difference(tiny):
    enc = lambda p: tiny.adapter.encode(p, seconds=0.5)  # noqa: E731
    n, p, q = enc("keys track"), enc("bright keys track"), enc("dark keys track")
    out = blend_conditioning(tiny.adapter, prompt="keys track", positive="bright keys track",
                             negative="dark keys track", alpha=0.5, seconds=0.5)
    key = "cross_attn_cond"
    assert torch.equal(out[key], n[key] + 0.5 * (p[key] - q[key]))
    assert torch.equal(out["cross_attn_mask"], torch.maximum(torch.maximum(n["cross_attn_mask"],
                                                                           p["cross_attn_mask"]),
                                                             q["cross_attn_mask"]))
