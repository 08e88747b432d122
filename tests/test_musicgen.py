"""MusicGen and MusicGen-Melody on tiny random-weight configs of the real transformers classes: the CFG layout,
exact steering on every generated frame in the chosen branches and nowhere else, bitwise detach, One-to-All,
fingerprints, strict folder loading, per-frame progress and cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from steerbridge.engine.runtime.errors import ModelLoadError, RenderCancelled, VectorMismatchError
from steerbridge.engine.runtime.render import RenderRequest, load_model
from steerbridge.engine.runtime.steering import Steering, SteeringTerm, steer
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta, load_vector, save_vector

FAMILIES = ["musicgen", "musicgen-melody"]
_MODELS: dict[str, object] = {}


def tiny(family: str):
    if family not in _MODELS:
        _MODELS[family] = load_model(f"tiny:{family}")
    return _MODELS[family]


@pytest.fixture(params=FAMILIES)
def model(request):
    m = tiny(request.param)
    yield m
    m.detach_steering()


def make_vector(model, *, site="block", layers=(1,), seed=0, steps=None) -> ConceptVector:
    g = torch.Generator().manual_seed(seed)
    d = model.site_dim(site)
    tensors = {l: torch.randn((d,) if steps is None else (steps, d), generator=g) for l in layers}
    return ConceptVector(tensors, VectorMeta(concept="c", site=site, method="test", fingerprint=model.fingerprint))


def generate(model, *, prompt="bright synth", cfg_scale=3.0, seconds=0.25, seed=3, on_step=None):
    adapter = model.adapter
    cond = adapter.encode(prompt, seconds=seconds, negative_prompt=None)
    return adapter.sample(cond, seed=seed, seconds=seconds, steps=4, cfg_scale=cfg_scale, sampler=None,
                          on_step=on_step)


class Capture(nn.Module):
    """Test-only: records each call's output, step and text context (swapped in outside any steering wrapper)."""

    def __init__(self, inner, gate):
        super().__init__()
        self.inner, self.gate, self.outputs, self.steps, self.contexts = inner, gate, [], [], []

    def forward(self, *a, **kw):
        y = self.inner(*a, **kw)
        self.outputs.append(y.detach().clone())
        self.steps.append(int(self.gate.steps_done))
        ctx = kw.get("key_value_states")
        self.contexts.append(None if ctx is None else ctx.detach().clone())
        return y


def captured(model, *, site="block", layers=None, **kw) -> dict[int, Capture]:
    adapter = model.adapter
    layers = range(model.num_layers) if layers is None else layers
    caps, slots = {}, []
    for layer in layers:
        parent, name = adapter.site_slot(site, layer)
        caps[layer] = Capture(getattr(parent, name), adapter.gate)
        setattr(parent, name, caps[layer])
        slots.append((parent, name, caps[layer].inner))
    try:
        generate(model, **kw)
    finally:
        for parent, name, inner in slots:
            setattr(parent, name, inner)
    return caps


def test_cfg_batch_is_cond_first_as_transformers_generates(model):
    # The row that follows the prompt is the conditional one; the null-text row does not change with the prompt.
    a = captured(model, layers=[0], prompt="bright synth")[0].outputs[0]
    b = captured(model, layers=[0], prompt="gloomy synth")[0].outputs[0]  # same token count
    assert a.shape[0] == 2 and not model.adapter.gate.uncond_first
    assert not torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])
    if model.family == "musicgen":  # the text keys/values enter through cross_attn: [cond, zeros]
        ctx = captured(model, site="cross_attn", layers=[0])[0].contexts[0]
        assert ctx.abs().sum() > 0 and torch.count_nonzero(ctx[1]) == 0


def test_one_step_per_generated_frame_with_progress_and_cancel(model):
    adapter = model.adapter
    frames = adapter.frames_for(0.25)
    calls = []
    audio = generate(model, on_step=lambda d, n: calls.append((d, n)))
    assert len(calls) == frames and calls[-1] == (4, 4)  # reported in the request's step units
    assert adapter.gate.steps_done == frames
    assert audio.shape[-1] >= int(0.25 * adapter.sample_rate)
    steps_seen = captured(model, layers=[0])[0].steps
    assert sorted(set(steps_seen)) == list(range(frames))  # every frame is a decoder call at its own step

    def stop_at_three(done, total):
        if adapter.gate.steps_done == 3:
            raise RenderCancelled("stop")

    with pytest.raises(RenderCancelled):
        generate(model, on_step=stop_at_three)
    assert adapter.gate.steps_done == 3


def test_seeded_generation_is_deterministic(model):
    req = RenderRequest(prompt="warm pad", seed=5, seconds=0.25, steps=4, cfg_scale=3.0)
    a, b = model.render(req).audio, model.render(req).audio
    assert np.array_equal(a, b) and a.shape == (1, int(0.25 * model.sample_rate))
    assert not np.array_equal(a, model.render(RenderRequest(prompt="warm pad", seed=6, seconds=0.25)).audio)


class Spy(nn.Module):
    """Inside a steering wrapper: the site's own output per call; the wrapper's output is recorded next to it."""

    def __init__(self, inner, log):
        super().__init__()
        self.inner, self.log = inner, log

    def forward(self, *a, **kw):
        y = self.inner(*a, **kw)
        self.log.append(y.detach().clone())
        return y


def spied_run(model, steering, **kw) -> dict[int, tuple[list, list]]:
    """Per layer: (site outputs, wrapper outputs) for every decoder call of one steered generation."""
    logs: dict[int, tuple[list, list]] = {}
    with steer(model.adapter, steering) as h:
        for (site, layer), wrapper in h.wrappers.items():
            if site != "block":
                continue
            before, after = logs.setdefault(layer, ([], []))
            wrapper.inner = Spy(wrapper.inner, before)
            plain = wrapper.forward
            wrapper.forward = (lambda p, out: lambda *a, **k: out.append(p(*a, **k).detach().clone()) or out[-1])(
                plain, after)
        generate(model, **kw)
        for wrapper in h.wrappers.values():
            if isinstance(wrapper.inner, Spy):
                wrapper.inner = wrapper.inner.inner
    return logs


@pytest.mark.parametrize("mode,gains", [("both", (1, 1)), ("cond_only", (1, 0)), ("uncond_only", (0, 1))])
def test_exactly_alpha_v_on_every_frame_in_the_chosen_branches_and_nowhere_else(model, mode, gains):
    v = make_vector(model, layers=(1, 2), seed=1)
    logs = spied_run(model, Steering((SteeringTerm(v, 1.25, layers=(1, 2)),), cfg_mode=mode))
    frames = model.adapter.frames_for(0.25)
    for layer, (before, after) in logs.items():
        assert len(before) == len(after) >= frames
        for y, z in zip(before, after):
            for row, gain in enumerate(gains):
                if layer in (1, 2) and gain:
                    add = (1.25 * v.tensor(layer)).expand_as(y[row])
                    assert torch.allclose(z[row] - y[row], add, atol=1e-5)  # every position of every call
                else:
                    assert torch.equal(z[row], y[row])
    # Recorded activations with vs without steering: the first decoder call sees identical inputs up to layer 1.
    base = captured(model)
    with steer(model.adapter, Steering((SteeringTerm(v, 1.25, layers=(1,)),), cfg_mode=mode)):
        steered = captured(model)
    assert torch.equal(steered[0].outputs[0], base[0].outputs[0])
    for row, gain in enumerate(gains):
        want = base[1].outputs[0][row] + gain * 1.25 * v.tensor(1)
        assert torch.allclose(steered[1].outputs[0][row], want, atol=1e-5)


def test_cfg_off_steers_the_single_pass(model):
    v = make_vector(model, layers=(0,), seed=2)
    logs = spied_run(model, Steering((SteeringTerm(v, 2.0),)), cfg_scale=1.0)
    before, after = logs[0]
    assert before[0].shape[0] == 1
    assert all(torch.allclose(z - y, (2.0 * v.tensor(0)).expand_as(y), atol=1e-5) for y, z in zip(before, after))


def test_one_to_all_places_one_layers_vector_at_every_chosen_layer(model):
    v = make_vector(model, layers=(0, 1, 2, 3), seed=4)
    logs = spied_run(model, Steering((SteeringTerm(v, 0.7, layers=(0, 2, 3), one_to_all=1),), cfg_mode="both"))
    for layer, (before, after) in logs.items():
        want = 0.7 * v.tensor(1) if layer in (0, 2, 3) else torch.zeros(model.site_dim("block"))
        for y, z in zip(before, after):
            assert torch.allclose(z - y, want.expand_as(y), atol=1e-5)


def test_cross_attn_site_steers_musicgen():
    model = tiny("musicgen")
    v = make_vector(model, site="cross_attn", layers=(2,), seed=6)
    base = captured(model, site="cross_attn", layers=[2])[2].outputs
    with steer(model.adapter, Steering((SteeringTerm(v, 1.5),))):
        steered = captured(model, site="cross_attn", layers=[2])[2].outputs
    assert torch.allclose(steered[0][0], base[0][0] + 1.5 * v.tensor(2), atol=1e-5)
    assert torch.equal(steered[0][1], base[0][1])
    model.detach_steering()


def test_detach_restores_bitwise_identical_generation(model):
    req = RenderRequest(prompt="warm pad", seed=1, seconds=0.25, steps=4, cfg_scale=3.0)
    plain = model.render(req).audio
    vec = make_vector(model, layers=(0, 1, 2, 3), seed=7)
    steered = model.render(req, steering=Steering((SteeringTerm(vec, 3.0),), cfg_mode="both")).audio
    assert np.abs(steered - plain).max() > 1e-4
    assert np.array_equal(model.render(req, steering=Steering()).audio, plain)  # attached, offsets zero
    model.detach_steering()
    assert np.array_equal(model.render(req).audio, plain)


def test_vector_files_are_refused_by_other_models(model, tmp_path):
    from steerbridge.engine.adapters.musicgen_tiny import build_random
    from steerbridge.engine.runtime.source import load_source

    path = save_vector(make_vector(model), tmp_path / "v.safetensors")
    assert load_vector(path, model=model).concept == "c"
    other_weights = build_random(family=model.family, seed=1)
    others = [load_source("tiny").fingerprint, tiny(next(f for f in FAMILIES if f != model.family)).fingerprint,
              load_source("tiny:sao-diffusers").fingerprint, other_weights.fingerprint]
    assert len(set(others + [model.fingerprint])) == 5
    for fp in others:
        with pytest.raises(VectorMismatchError, match="was made for model"):
            load_vector(path, fingerprint=fp)


def test_onnx_is_refused(model, tmp_path):
    from steerbridge.engine.runtime.errors import EngineError

    with pytest.raises(EngineError, match=r"support the model families \['stable-audio-tools'\]"):
        model.use_backend("onnx", onnx_dir=tmp_path)


@pytest.mark.parametrize("family", FAMILIES)
def test_strict_folder_loading_round_trip_and_named_keys(family, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from steerbridge.engine.adapters.musicgen_tiny import build_random
    from steerbridge.engine.runtime.source import load_source

    built = build_random(family=family)  # a fresh copy: no adapter shims in its module tree
    folder = tmp_path / "mg"
    built.model.model.save_pretrained(folder, safe_serialization=True)
    built.model.tokenizer.save_pretrained(folder)
    loaded = load_source(folder)  # recognised by config.json's architectures
    assert (loaded.family, loaded.fingerprint) == (family, tiny(family).fingerprint)
    other = "musicgen" if family != "musicgen" else "musicgen-melody"
    with pytest.raises(ModelLoadError, match=f"does not name .*{other}"):
        load_source(folder, family=other)
    (weights,) = sorted(folder.glob("*.safetensors"))
    state = load_file(weights)
    key = sorted(k for k in state if "decoder.model" in k)[3]
    state.pop(key)
    state["decoder.stray.weight"] = torch.zeros(2)
    save_file(state, weights)
    with pytest.raises(ModelLoadError, match=rf"missing keys \(1\): {key}(.|\n)*unexpected keys \(1\): decoder.stray"):
        load_source(folder)
    weights.unlink()
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="pickle files, which steerbridge never reads"):
        load_source(folder)
    shutil.rmtree(folder)
    built.model.model.save_pretrained(folder, safe_serialization=True)  # weights, no tokenizer files
    with pytest.raises(ModelLoadError, match="has no tokenizer.json or spiece.model(.|\n)*never downloads"):
        load_source(folder)
