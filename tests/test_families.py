"""Every diffusers family on its tiny random-weight config of the real classes: exact steering on the right CFG rows,
bitwise detach, fingerprints, activation patching, extraction and the render CLI, all through the adapter."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from steerbridge.engine.runtime.errors import EngineError, VectorMismatchError
from steerbridge.engine.runtime.render import RenderRequest, load_model
from steerbridge.engine.runtime.steering import Steering, SteeringTerm, steer
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta, load_vector, save_vector

FAMILIES = ["sao-diffusers", "ace-step", "sa3", "audioldm2"]
# Which half of the CFG batch is unconditional, as each pipeline's __call__ batches it (see the adapters).
UNCOND_FIRST = {"sao-diffusers": True, "ace-step": False, "sa3": True, "audioldm2": True}
_MODELS: dict[str, object] = {}


@pytest.fixture(params=FAMILIES)
def model(request):
    if request.param not in _MODELS:
        _MODELS[request.param] = load_model(f"tiny:{request.param}")
    m = _MODELS[request.param]
    yield m
    m.detach_steering()


def make_vector(model, *, site="cross_attn", layers=(1,), seed=0, steps=None) -> ConceptVector:
    g = torch.Generator().manual_seed(seed)
    d = {l: model.site_dim(site, l) for l in layers}  # a U-Net's layers differ in width
    tensors = {l: torch.randn((d[l],) if steps is None else (steps, d[l]), generator=g) for l in layers}
    return ConceptVector(tensors, VectorMeta(concept="c", site=site, method="test", fingerprint=model.fingerprint))


class Capture(nn.Module):
    """Test-only: records each call's output and text context (swapped in outside any steering wrapper)."""

    def __init__(self, inner, key):
        super().__init__()
        self.inner, self.key, self.outputs, self.contexts = inner, key, [], []

    def forward(self, *a, **kw):
        y = self.inner(*a, **kw)
        self.outputs.append(y.detach().clone())
        ctx = kw.get(self.key)
        self.contexts.append(None if ctx is None else ctx.detach().clone())
        return y


def run(model, *, prompt="bright synth", cfg_scale=6.0, steps=3, site="cross_attn", layer=1) -> Capture:
    adapter = model.adapter
    parent, name = adapter.site_slot(site, layer)
    cap = Capture(getattr(parent, name), adapter.context_kwarg)
    setattr(parent, name, cap)
    try:
        cond = adapter.encode(prompt, seconds=1.0, negative_prompt=None)
        adapter.sample(cond, seed=3, seconds=1.0, steps=steps, cfg_scale=cfg_scale, sampler=None, on_step=None)
    finally:
        setattr(parent, name, cap.inner)
    return cap


def cond_row(model) -> int:
    return 1 if model.adapter.gate.uncond_first else 0


def test_cfg_layout_is_what_the_pipeline_really_batches(model):
    # The row whose text context follows the prompt is the conditional one; the other does not change.
    a, b = run(model, prompt="bright synth").contexts[0], run(model, prompt="gloomy synth").contexts[0]  # same length
    assert a.shape[0] == 2
    c, u = cond_row(model), 1 - cond_row(model)
    assert not torch.equal(a[c], b[c])
    assert torch.equal(a[u], b[u])
    assert model.adapter.gate.uncond_first == UNCOND_FIRST[model.family]


def test_cond_only_adds_exactly_alpha_v_to_conditional_rows(model):
    v = make_vector(model, layers=(1,))
    base = run(model).outputs
    with steer(model.adapter, Steering((SteeringTerm(v, 2.5),))) as h:
        steered = run(model).outputs
    assert len(base) == len(steered) >= 3
    c, u = cond_row(model), 1 - cond_row(model)
    # the first call sees identical inputs (earlier layers unsteered): the maths is exact
    assert torch.allclose(steered[0][c], base[0][c] + 2.5 * v.tensor(1), atol=1e-5)
    assert not torch.equal(steered[0][c], base[0][c])
    assert torch.equal(steered[0][u], base[0][u])
    assert not h.attached


@pytest.mark.parametrize("mode,gains", [("both", (1, 1)), ("uncond_only", (0, 1))])
def test_other_cfg_modes(model, mode, gains):
    v = make_vector(model, layers=(1,), seed=1)
    base = run(model, steps=2).outputs
    with steer(model.adapter, Steering((SteeringTerm(v, -1.5),), cfg_mode=mode)):
        steered = run(model, steps=2).outputs
    for row, gain in ((cond_row(model), gains[0]), (1 - cond_row(model), gains[1])):
        if gain:
            assert torch.allclose(steered[0][row], base[0][row] - 1.5 * v.tensor(1), atol=1e-5)
        else:
            assert torch.equal(steered[0][row], base[0][row])


def test_cfg_off_steers_the_single_conditional_pass(model):
    v = make_vector(model, layers=(1,), seed=2)
    base = run(model, cfg_scale=1.0, steps=2).outputs
    with steer(model.adapter, Steering((SteeringTerm(v, 3.0),))):
        steered = run(model, cfg_scale=1.0, steps=2).outputs
    assert base[0].shape[0] == 1
    assert torch.allclose(steered[0], base[0] + 3.0 * v.tensor(1), atol=1e-5)


def test_start_step_and_per_step_vectors(model):
    steps = 4
    v = make_vector(model, layers=(1,), steps=steps, seed=5)
    adapter = model.adapter
    seen: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    with steer(adapter, Steering((SteeringTerm(v, 1.0),), start_step=2)) as h:
        wrapper = h.wrappers[("cross_attn", 1)]
        inner = wrapper.inner

        class Spy(nn.Module):  # inside the wrapper: the site's own output, then the wrapper's
            def forward(self, *a, **kw):
                y = inner(*a, **kw)
                seen.append((int(adapter.gate.step), y.detach().clone()))
                return y

        wrapper.inner = Spy()
        outs = []
        plain_forward = wrapper.forward
        wrapper.forward = lambda *a, **kw: outs.append(plain_forward(*a, **kw).detach().clone()) or outs[-1]
        adapter.sample(adapter.encode("x", seconds=1.0, negative_prompt=None), seed=0, seconds=1.0, steps=steps,
                       cfg_scale=6.0, sampler=None, on_step=None)
        wrapper.inner = inner
    assert sorted({s for s, _ in seen}) == [0, 1, 2, 3]
    c = cond_row(model)
    for (step, before), after in zip(seen, outs):
        if step < 2:
            assert torch.equal(after, before)
        else:
            assert torch.allclose(after[c] - before[c], v.tensor(1)[step].expand_as(before[c]), atol=1e-5)
            assert torch.equal(after[1 - c], before[1 - c])


def test_block_site_multi_concept_and_detach_restores_bitwise(model):
    req = RenderRequest(prompt="warm pad", seed=1, seconds=0.5, steps=3)
    plain = model.render(req).audio
    a, b = make_vector(model, site="block", layers=(0, 1), seed=7), make_vector(model, layers=(0,), seed=8)
    c = make_vector(model, layers=(0,), seed=9)
    steering = Steering((SteeringTerm(a, 0.8), SteeringTerm(b, 0.5, orthogonalize_against=(c,)),
                         SteeringTerm(c, 0.3, layers=(0, 1), one_to_all=0)), cfg_mode="both")
    steered = model.render(req, steering=steering).audio
    assert np.abs(steered - plain).max() > 1e-4
    assert np.array_equal(model.render(req, steering=Steering()).audio, plain)  # attached, all offsets zero
    model.detach_steering()
    assert np.array_equal(model.render(req).audio, plain)


def test_knob_move_only_rewrites_buffers(model):
    v = make_vector(model, layers=(1,))
    model.render(RenderRequest(prompt="x", seconds=0.5, steps=2), steering=Steering((SteeringTerm(v, 1.0),)))
    wrappers = dict(model.handle.wrappers)
    offsets = {k: w.offset for k, w in wrappers.items()}
    model.render(RenderRequest(prompt="x", seconds=0.5, steps=2), steering=Steering((SteeringTerm(v, -2.0),)))
    assert model.handle.wrappers == wrappers
    assert all(w.offset is offsets[k] for k, w in wrappers.items())  # same tensors, new values
    assert torch.allclose(wrappers[("cross_attn", 1)].offset[0], -2.0 * v.tensor(1))


def test_vectors_are_refused_across_families(model, tmp_path):
    from steerbridge.engine.runtime.source import load_source

    path = save_vector(make_vector(model), tmp_path / "v.safetensors")
    assert load_vector(path, model=model).concept == "c"
    sat = load_source("tiny")
    with pytest.raises(VectorMismatchError, match="was made for model"):
        load_vector(path, fingerprint=sat.fingerprint)
    others = [f for f in FAMILIES if f != model.family]
    for other in others:
        with pytest.raises(VectorMismatchError, match="was made for model"):
            load_vector(path, model=load_model(f"tiny:{other}") if other not in _MODELS else _MODELS[other])


def test_extraction_runs_through_the_adapter_and_steers(model):
    from steerbridge.engine import extract_caa

    vec = extract_caa(model, positive=["bright synth"], negative=["dark synth"], concept="bright", seconds=0.5,
                      steps=2, normalize=True)
    assert vec.fingerprint == model.fingerprint and vec.layers == tuple(range(model.num_layers))
    req = RenderRequest(prompt="synth", seconds=0.5, steps=2)
    assert not np.array_equal(model.render(req, steering=Steering((SteeringTerm(vec, 4.0),))).audio,
                              model.render(req).audio)


def test_patching_finds_a_planted_functional_layer(model):
    from steerbridge.engine.evaluation.concepts import get_concept
    from steerbridge.engine.localisation.patching import activation_patching

    planted = load_model(f"tiny:{model.family}")  # a private copy to zero layers in
    only = 1
    with torch.no_grad():
        for layer in range(planted.num_layers):
            if layer != only:
                parent, name = planted.adapter.site_slot("cross_attn", layer)
                out = getattr(parent, name).to_out
                out = out[0] if isinstance(out, nn.ModuleList) else out
                out.weight.zero_()
                if out.bias is not None:
                    out.bias.zero_()
    res = activation_patching(planted, concept="brightness", pairs=[("bright piano loop", "gloomy piano loop")],
                              score=get_concept("brightness").score, seconds=0.5, steps=3, cfg_scale=6.0)
    assert res.target_score != res.source_score
    assert res.impact[only] == pytest.approx(1.0, abs=1e-9)
    assert [res.impact[l] for l in range(planted.num_layers) if l != only] == [0.0] * (planted.num_layers - 1)
    assert res.functional == (only,)


def test_onnx_is_refused_with_the_families_it_supports(model, tmp_path):
    from steerbridge.engine.onnx.export import export_denoiser

    with pytest.raises(EngineError, match=r"support the model families \['stable-audio-tools'\]"):
        model.use_backend("onnx", onnx_dir=tmp_path)
    with pytest.raises(EngineError, match=model.family):
        export_denoiser(model, tmp_path / "out", check=False)


def test_render_cli_end_to_end(model, tmp_path):
    from steerbridge.bridge.cli import main

    vec = save_vector(make_vector(model, layers=tuple(range(model.num_layers))), tmp_path / "v.safetensors")
    out = tmp_path / "out"
    code = main(["render", "--model", f"tiny:{model.family}", "--steer", f"{vec}=1.5", "--seconds", "0.5",
                 "--steps", "2", "--out", str(out), "--json", "--quiet"])
    assert code == 0
    wavs = sorted(out.glob("*.wav"))
    assert len(wavs) == 1 and wavs[0].stat().st_size > 1000
    assert main(["render", "--model", "tiny:no-such-family", "--out", str(out)]) == 2


def test_strict_folder_loading_round_trip_and_named_keys(model, tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file

    from steerbridge.engine.runtime.errors import ModelLoadError
    from steerbridge.engine.runtime.source import load_source

    folder = tmp_path / "pipe"
    model.adapter.pipe.save_pretrained(folder, safe_serialization=True)
    loaded = load_source(folder)  # recognised by model_index.json
    assert (loaded.family, loaded.fingerprint) == (model.family, model.fingerprint)
    assert load_source(folder, family=model.family).fingerprint == model.fingerprint
    for name, tok in model.adapter.pipe.components.items():  # tokenizers are not in the fingerprint: compare ids
        if "tokenizer" in name and tok is not None:
            text = "Bright Synth, 120 bpm!"
            assert getattr(loaded.model, name)(text).input_ids == tok(text).input_ids, name
    with pytest.raises(ModelLoadError, match="has no model_config.json"):
        load_source(folder, family="stable-audio-tools")  # --family names another family: refused
    denoiser = json.loads((folder / "model_index.json").read_text())
    sub = "transformer" if "transformer" in denoiser else "unet"
    (weights,) = sorted((folder / sub).glob("*.safetensors"))
    state = load_file(weights)
    key = sorted(state)[3]
    state.pop(key)
    save_file(state, weights)
    with pytest.raises(ModelLoadError, match=rf"missing keys \(1\): {key}"):
        load_source(folder)
    weights.unlink()
    (folder / sub / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="pickle files, which steerbridge never reads"):
        load_source(folder)
    import shutil

    shutil.rmtree(folder / "text_encoder")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))  # nor in the cache (tests/test_hf_cache.py)
    with pytest.raises(ModelLoadError, match="never downloads"):
        load_source(folder)


def test_localize_probes_cli(model, tmp_path, capsys):
    from steerbridge.bridge.cli import main

    out = tmp_path / "mood.toml"
    code = main(["localize", "--model", f"tiny:{model.family}", "--concept", "mood", "--method", "probes",
                 "--seconds", "0.5", "--steps", "2", "--top", "2", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["layers"]) == 2 and all(0 <= l < model.num_layers for l in result["layers"])


@pytest.mark.slow
def test_bench_quick_cli(model, tmp_path, capsys):
    from steerbridge.bridge.cli import main

    threads = torch.get_num_threads()
    try:
        code = main(["bench", "--model", f"tiny:{model.family}", "--out", str(tmp_path), "--quick", "--json"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    loc = summary["localization"]["brightness"]
    assert len(loc["patching"]["impact"]) == model.num_layers and len(loc["probes"]["accuracy"]) == model.num_layers
    assert {r["method"] for r in summary["rows"]} >= {"caa", "austeer", "sae"}
    assert (tmp_path / "report.md").is_file()
