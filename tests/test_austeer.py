"""AUSteer: sign-consistency scores, global top-k, planted directions recovered."""

from __future__ import annotations

import torch

from steerbridge.engine.extraction.austeer import austeer_vector, global_topk_mask, sign_consistency
from steerbridge.engine.extraction.frames import SiteFrames, collect_site_frames
from steerbridge.engine.runtime.steering import Steering, SteeringTerm
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta


def _frames(frames: dict[int, torch.Tensor], prompts: tuple[str, ...]) -> SiteFrames:
    return SiteFrames(site="cross_attn", prompts=prompts, frames=frames,
                      means={l: f.mean(2) for l, f in frames.items()}, norms={l: 1.0 for l in frames})


def test_sign_consistency_exact_fractions():
    pos = torch.tensor([[[[1.0, 0.0, 5.0]], [[1.0, 0.0, -5.0]]]])  # [pairs=1, steps=2, T=1, d=3]
    neg = torch.zeros_like(pos)
    assert torch.equal(sign_consistency(pos, neg), torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64))
    per = sign_consistency(pos, neg, per_step=True)
    assert torch.equal(per, torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], dtype=torch.float64))


def test_global_topk_spans_layers_and_breaks_ties_deterministically():
    scores = {0: torch.tensor([0.6, -0.9, 0.5]), 1: torch.tensor([1.0, 0.9, -0.7])}
    mask = global_topk_mask(scores, 3)
    assert mask[0].tolist() == [False, True, False] and mask[1].tolist() == [True, True, False]


def test_planted_direction_is_recovered_with_other_dims_zero():
    gen = torch.Generator().manual_seed(0)
    pairs, steps, frames, d = 6, 2, 20, 16
    pos = {l: torch.randn(pairs, steps, frames, d, generator=gen) for l in range(3)}
    neg = {l: torch.randn(pairs, steps, frames, d, generator=gen) for l in range(3)}
    pos[1][..., 3] += 10.0  # consistently higher in positive runs
    pos[1][..., 7] -= 10.0  # consistently lower
    names = tuple(f"p{i}" for i in range(pairs))
    vec = austeer_vector(_frames(pos, names), _frames(neg, names), concept="planted", fingerprint="fp", k=2)
    assert vec.method == "austeer" and vec.layers == (1,)  # the global budget localised it
    expected = torch.zeros(d)
    expected[3], expected[7] = 1.0, -1.0
    assert torch.equal(vec.tensor(1), expected)
    local = austeer_vector(_frames(pos, names), _frames(neg, names), concept="planted", fingerprint="fp", k=2,
                           layers=[0, 2])  # active layers without the plant: k entries still chosen there
    assert set(local.layers) <= {0, 2} and sum(int((local.tensor(l) != 0).sum()) for l in local.layers) == 2


def test_tiny_model_planted_steering_dims_score_one(tiny):
    """Positive renders steered at layer 1 on dims 5 and 9; AUSteer must put them in its top-k."""
    d = tiny.site_dim("cross_attn")
    plant = torch.zeros(d)
    plant[5], plant[9] = 50.0, -50.0
    meta = VectorMeta(concept="plant", site="cross_attn", method="test", fingerprint=tiny.fingerprint)
    prompts = ["piano loop", "bell song"]
    kw = dict(site="cross_attn", layers=[0, 1], seed=0, seconds=1.0, steps=3, cfg_scale=6.0)
    tiny.handle.attach()
    tiny.handle.set(Steering(terms=(SteeringTerm(ConceptVector({1: plant}, meta), alpha=1.0),)))
    pos = collect_site_frames(tiny, prompts, **kw)
    tiny.handle.set(None)
    neg = collect_site_frames(tiny, prompts, **kw)
    assert pos.frames[1].shape[:2] == (2, 3) and pos.frames[1].shape[-1] == d
    assert torch.allclose(pos.frames[1].mean(2), pos.means[1])  # frames and recorder means agree
    vec = austeer_vector(pos, neg, concept="plant", fingerprint=tiny.fingerprint, k=2)
    assert vec.layers == (1,)
    assert vec.tensor(1)[5] == 1.0 and vec.tensor(1)[9] == -1.0
    assert int((vec.tensor(1) != 0).sum()) == 2
    assert vec.meta.site_norms[1] > 0
