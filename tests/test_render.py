"""Rendering: shape, determinism, progress, cancel, steering effect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steerbridge.engine import RenderCancelled, RenderRequest, Steering, SteeringTerm
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta


def test_render_is_bitwise_deterministic(tiny):
    req = RenderRequest("driving drums", seed=11, seconds=1.5, steps=3)
    a, b = tiny.render(req), tiny.render(req)
    assert a.audio.dtype == np.float32 and a.audio.shape == (2, 24000) and a.sample_rate == 16000
    assert np.array_equal(a.audio, b.audio)
    c = tiny.render(RenderRequest("driving drums", seed=12, seconds=1.5, steps=3))
    assert not np.array_equal(a.audio, c.audio)


def test_progress_and_cancel_between_steps(tiny):
    seen = []
    tiny.render(RenderRequest("x", seconds=1, steps=4), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(RenderCancelled, match="after step 2/4"):
        tiny.render(RenderRequest("x", seconds=1, steps=4), cancel=lambda: len(seen) >= 6,
                    progress=lambda d, t: seen.append((d, t)))


def test_steering_changes_audio_and_zero_alpha_does_not(tiny):
    req = RenderRequest("pad", seed=1, seconds=1, steps=3)
    clean = tiny.render(req).audio
    g = torch.Generator().manual_seed(0)
    v = ConceptVector({l: torch.randn(tiny.site_dim("cross_attn"), generator=g) for l in range(4)},
                      VectorMeta(concept="r", site="cross_attn", method="test", fingerprint=tiny.fingerprint))
    zero = tiny.render(req, steering=Steering((SteeringTerm(v, 0.0),))).audio
    strong = tiny.render(req, steering=Steering((SteeringTerm(v, 2.0),))).audio
    assert np.array_equal(zero, clean)
    assert np.abs(strong - clean).max() > 1e-3


def test_bad_requests_are_refused(tiny):
    with pytest.raises(EngineError, match="seconds"):
        RenderRequest("x", seconds=0)
    with pytest.raises(EngineError, match="sampler 'euler'"):
        tiny.render(RenderRequest("x", seconds=1, steps=2, sampler="euler"))
