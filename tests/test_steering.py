"""Exact steering maths on the tiny stable-audio-tools model."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.steering import Steering, SteeringHandle, SteeringTerm, site_offsets, steer
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta


def make_vector(model, *, site="cross_attn", layers=(1,), seed=0, steps=None, concept="c", norms=None):
    g = torch.Generator().manual_seed(seed)
    d = model.site_dim(site)
    shape = (d,) if steps is None else (steps, d)
    tensors = {l: torch.randn(shape, generator=g) for l in layers}
    meta = VectorMeta(concept=concept, site=site, method="test", fingerprint=model.fingerprint,
                      site_norms=norms or {})
    return ConceptVector(tensors, meta)


class Capture(nn.Module):
    """Test-only: records what the wrapped site returns, call by call."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.outputs = []

    def forward(self, *a, **kw):
        y = self.inner(*a, **kw)
        self.outputs.append(y.detach().clone())
        return y


def run_dit(model, *, cfg_scale, steps=3, site="cross_attn", layer=1, sigma_values=None, cfg_interval=(0, 1)):
    """Run the real sampler step by step; capture the site output at ``layer`` (outside any wrapper)."""
    adapter = model.adapter
    parent, name = adapter.site_slot(site, layer)
    cap = Capture(getattr(parent, name))
    setattr(parent, name, cap)
    try:
        cond = adapter.encode("bright synth", seconds=1.0)
        # cfg_interval travels to the DiT through the sampler's extra args
        adapter.sample({**cond, "cfg_interval": cfg_interval}, seed=3, seconds=1.0, steps=steps,
                       cfg_scale=cfg_scale)
    finally:
        setattr(parent, name, cap.inner)
    return cap.outputs


def test_cond_only_adds_alpha_v_to_conditional_rows_only(tiny):
    v = make_vector(tiny, layers=(1,))
    base = run_dit(tiny, cfg_scale=6.0)
    with steer(tiny.adapter, Steering((SteeringTerm(v, 2.5),))) as h:
        # capture *outside* the wrapper: wrap the wrapper
        steered = run_dit(tiny, cfg_scale=6.0)
    assert len(base) == len(steered) == 3
    expect = 2.5 * v.tensor(1)
    # step 0 sees identical inputs (earlier layers unsteered), so the maths is exact
    b, s = base[0], steered[0]
    assert b.shape[0] == 2  # [cond, uncond]
    assert torch.allclose(s[0], b[0] + expect, atol=1e-5)
    assert torch.equal(s[1], b[1])
    assert not h.attached


@pytest.mark.parametrize("mode,cond_gain,uncond_gain", [("both", 1, 1), ("uncond_only", 0, 1)])
def test_other_cfg_modes(tiny, mode, cond_gain, uncond_gain):
    v = make_vector(tiny, layers=(1,), seed=1)
    base = run_dit(tiny, cfg_scale=6.0, steps=2)
    with steer(tiny.adapter, Steering((SteeringTerm(v, -1.5),), cfg_mode=mode)):
        steered = run_dit(tiny, cfg_scale=6.0, steps=2)
    expect = -1.5 * v.tensor(1)
    for row, gain in ((0, cond_gain), (1, uncond_gain)):
        if gain:
            assert torch.allclose(steered[0][row], base[0][row] + expect, atol=1e-5)
        else:
            assert torch.equal(steered[0][row], base[0][row])


def test_cfg_off_steers_the_single_pass(tiny):
    v = make_vector(tiny, layers=(1,), seed=2)
    base = run_dit(tiny, cfg_scale=1.0, steps=2)
    with steer(tiny.adapter, Steering((SteeringTerm(v, 3.0),))):
        steered = run_dit(tiny, cfg_scale=1.0, steps=2)
    assert base[0].shape[0] == 1
    assert torch.allclose(steered[0], base[0] + 3.0 * v.tensor(1), atol=1e-5)
    with steer(tiny.adapter, Steering((SteeringTerm(v, 3.0),), cfg_mode="uncond_only")):
        untouched = run_dit(tiny, cfg_scale=1.0, steps=2)
    assert torch.equal(untouched[0], base[0])


def test_cfg_interval_outside_is_a_single_conditional_pass(tiny):
    v = make_vector(tiny, layers=(1,), seed=4)
    # an empty interval: CFG never active, every call is a single conditional row
    with steer(tiny.adapter, Steering((SteeringTerm(v, 1.0),))):
        outs = run_dit(tiny, cfg_scale=6.0, steps=2, cfg_interval=(2.0, 3.0))
    assert all(o.shape[0] == 1 for o in outs)
    assert tiny.adapter.gate.gate[0] == 1.0


def test_start_step_and_per_step_vectors_hit_exactly_the_intended_steps(tiny):
    steps = 4
    v = make_vector(tiny, layers=(0,), steps=steps, seed=5)
    probe = []
    adapter = tiny.adapter
    with steer(adapter, Steering((SteeringTerm(v, 1.0),), start_step=2)) as h:
        wrapper = h.wrappers[("cross_attn", 0)]
        inner = wrapper.inner

        class Spy(nn.Module):
            def forward(self, *a, **kw):
                y = inner(*a, **kw)
                probe.append((int(adapter.gate.step), y.detach().clone()))
                return y

        wrapper.inner = Spy()
        out = []
        orig_forward = wrapper.forward

        def fwd(*a, **kw):
            y = orig_forward(*a, **kw)
            out.append(y.detach().clone())
            return y

        wrapper.forward = fwd
        cond = adapter.encode("x", seconds=1.0)
        adapter.sample(cond, seed=0, seconds=1.0, steps=steps, cfg_scale=6.0)
        wrapper.inner = inner
    assert [s for s, _ in probe] == [0, 1, 2, 3]
    for (step, before), after in zip(probe, out):
        delta = after - before
        if step < 2:
            assert torch.equal(after, before)
        else:
            assert torch.allclose(delta[0], v.tensor(0)[step].expand_as(delta[0]), atol=1e-5)
            assert torch.equal(after[1], before[1])


def test_detach_restores_original_modules_even_after_an_exception(tiny):
    from steerbridge.engine import RenderRequest

    req = RenderRequest("warm pad", seed=7, seconds=1.0, steps=2)
    before_modules = [id(m) for m in tiny.model.modules()]
    clean = tiny.render(req).audio
    v = make_vector(tiny, layers=(0, 2), seed=6)
    with pytest.raises(RuntimeError):
        with steer(tiny.adapter, Steering((SteeringTerm(v, 5.0),))):
            raise RuntimeError("boom")
    assert [id(m) for m in tiny.model.modules()] == before_modules
    again = tiny.render(req).audio
    assert (again == clean).all()


def test_attach_failing_half_way_leaves_nothing_behind(tiny):
    class Broken:
        def __init__(self, adapter):
            self.a = adapter

        def __getattr__(self, k):
            return getattr(self.a, k)

        def site_slot(self, site, layer):
            if layer == 2:
                raise EngineError("no such layer")
            return self.a.site_slot(site, layer)

    before = [id(m) for m in tiny.model.modules()]
    h = SteeringHandle(Broken(tiny.adapter))
    with pytest.raises(EngineError):
        h.attach()
    assert [id(m) for m in tiny.model.modules()] == before and not h.attached


def test_multi_concept_one_to_all_orthogonalize_and_norm_units(tiny):
    d = tiny.site_dim("cross_attn")
    a = make_vector(tiny, layers=(0, 1), seed=10, concept="a", norms={0: 2.0, 1: 3.0})
    b = make_vector(tiny, layers=(1,), seed=11, concept="b")
    st = Steering((SteeringTerm(a, 0.5), SteeringTerm(b, 2.0)))
    offs = site_offsets(st, site="cross_attn", num_layers=tiny.num_layers, dim=d)
    assert torch.allclose(offs[0][0], 0.5 * a.tensor(0))
    assert torch.allclose(offs[1][0], 0.5 * a.tensor(1) + 2.0 * b.tensor(1))
    # one-to-all: layer 1's direction at layers 0..3
    o2a = site_offsets(Steering((SteeringTerm(a, 1.0, layers=(0, 1, 2, 3), one_to_all=1),)),
                       site="cross_attn", num_layers=tiny.num_layers, dim=d)
    assert all(torch.allclose(o2a[l][0], a.tensor(1)) for l in range(4))
    # orthogonalised a has no component along b at layer 1
    ortho = site_offsets(Steering((SteeringTerm(a, 1.0, layers=(1,), orthogonalize_against=(b,)),)),
                         site="cross_attn", num_layers=tiny.num_layers, dim=d)
    assert abs(float(ortho[1][0] @ b.tensor(1))) < 1e-4
    with pytest.raises(EngineError, match="same site"):  # same width, another space: refused, not applied
        SteeringTerm(a, 1.0, orthogonalize_against=(make_vector(tiny, site="block", layers=(1,), concept="blk"),))
    # norm units: offset length = alpha * site norm
    normed = site_offsets(Steering((SteeringTerm(a, 0.5),), alpha_units="norm"),
                          site="cross_attn", num_layers=tiny.num_layers, dim=d)
    assert math.isclose(float(normed[1][0].norm()), 0.5 * 3.0, rel_tol=1e-5)
    with pytest.raises(EngineError, match="site norm"):
        site_offsets(Steering((SteeringTerm(b, 1.0),), alpha_units="norm"), site="cross_attn",
                     num_layers=tiny.num_layers, dim=d)


def test_block_site_and_bad_settings(tiny):
    v = make_vector(tiny, site="block", layers=(2,), seed=12)
    base = run_dit(tiny, cfg_scale=6.0, steps=2, site="block", layer=2)
    with steer(tiny.adapter, Steering((SteeringTerm(v, 1.0),))):
        steered = run_dit(tiny, cfg_scale=6.0, steps=2, site="block", layer=2)
    assert len(base) == len(steered) == 2
    assert torch.allclose(steered[0][0], base[0][0] + v.tensor(2), atol=1e-5)
    assert torch.equal(steered[0][1], base[0][1])
    with pytest.raises(EngineError, match="cfg_mode"):
        Steering(cfg_mode="sideways")
    with pytest.raises(EngineError, match="out of range"):
        site_offsets(Steering((SteeringTerm(v, 1.0, layers=(9,)),)), site="block", num_layers=4,
                     dim=tiny.site_dim("block"))


def test_alpha_change_is_in_place(tiny):
    v = make_vector(tiny, layers=(1,), seed=13)
    h = SteeringHandle(tiny.adapter).attach()
    try:
        h.set(Steering((SteeringTerm(v, 1.0),)))
        buf = h.wrappers[("cross_attn", 1)].offset
        ptr = buf.data_ptr()
        h.set(Steering((SteeringTerm(v, -4.0),)))
        assert h.wrappers[("cross_attn", 1)].offset.data_ptr() == ptr
        assert torch.allclose(buf[0], -4.0 * v.tensor(1))
    finally:
        h.detach()
