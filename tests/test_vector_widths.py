"""Vectors whose layers differ in width (a U-Net's levels): file format, arithmetic and the steering maths."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from steerbridge.engine.runtime.errors import EngineError, VectorFileError, VectorMismatchError
from steerbridge.engine.runtime.steering import Steering, SteeringTerm, site_offsets
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta, load_vector, save_vector

WIDTHS = [4, 4, 8, 8, 4]  # per layer, like a small U-Net: level 0, level 1, back to level 0


def vec(layers=(0, 2), *, seed=0, concept="c", steps=None) -> ConceptVector:
    g = torch.Generator().manual_seed(seed)
    shape = lambda l: (WIDTHS[l],) if steps is None else (steps, WIDTHS[l])
    return ConceptVector({l: torch.randn(shape(l), generator=g) for l in layers},
                         VectorMeta(concept=concept, site="cross_attn", method="test", fingerprint="fp"))


def _meta(path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["steerbridge"])


def test_uniform_vectors_keep_the_version_1_file(tmp_path):
    v = vec(layers=(0, 1))
    path = save_vector(v, tmp_path / "u.safetensors")
    meta = _meta(path)
    assert meta["format_version"] == 1 and "widths" not in meta  # older steerbridge reads it unchanged
    back = load_vector(path, fingerprint="fp")
    assert back.dim == 4 and back.uniform
    assert all(torch.equal(back.tensor(l), v.tensor(l)) for l in v.layers)


def test_per_layer_widths_round_trip_as_version_2(tmp_path):
    v = vec(layers=(0, 2, 4), steps=3)
    assert v.widths == {0: 4, 2: 8, 4: 4} and not v.uniform
    with pytest.raises(VectorFileError, match="different width per layer"):
        _ = v.dim
    path = save_vector(v, tmp_path / "w.safetensors")
    meta = _meta(path)
    assert meta["format_version"] == 2 and meta["widths"] == {"0": 4, "2": 8, "4": 4}
    back = load_vector(path, fingerprint="fp")
    assert back.widths == v.widths and all(torch.equal(back.tensor(l), v.tensor(l)) for l in v.layers)
    with pytest.raises(VectorMismatchError, match="was made for model fp"):
        load_vector(path, fingerprint="other")  # the fingerprint check is unchanged


def test_recorded_widths_must_match_the_tensors(tmp_path):
    from safetensors.torch import save_file

    v = vec(layers=(0, 2))
    meta = json.loads(v.meta.to_json(v.layers, {0: 4, 2: 4}))  # metadata says 4, tensor is 8 wide
    save_file({f"layer.{l}": t for l, t in v.tensors.items()}, str(tmp_path / "bad.safetensors"),
              metadata={"steerbridge": json.dumps(meta)})
    with pytest.raises(VectorFileError, match=r"records widths \{0: 4, 2: 4\} but its tensors have"):
        load_vector(tmp_path / "bad.safetensors")


def test_model_width_check_is_per_layer(tmp_path):
    class Model:
        fingerprint, num_layers = "fp", len(WIDTHS)

        def __init__(self, widths):
            self.widths = widths

        def site_dim(self, site, layer=None):
            return self.widths[layer]

    path = save_vector(vec(layers=(0, 2)), tmp_path / "w.safetensors")
    assert load_vector(path, model=Model(WIDTHS)).widths == {0: 4, 2: 8}
    with pytest.raises(VectorMismatchError, match=r"layers 2 \(vector d=8, model d=16\)"):
        load_vector(path, model=Model([4, 4, 16, 8, 4]))


def test_arithmetic_keeps_each_layers_width():
    a, b = vec(layers=(0, 2), seed=1), vec(layers=(2, 3), seed=2)
    c = 2 * a - b
    assert c.widths == {0: 4, 2: 8, 3: 8}
    assert torch.allclose(c.tensor(2), 2 * a.tensor(2) - b.tensor(2))
    wrong = ConceptVector({2: torch.ones(4)}, b.meta)
    with pytest.raises(VectorMismatchError, match="widths differ at layers"):
        _ = a + wrong


def test_offsets_per_layer_width_orthogonalised_per_layer():
    mood, tempo = vec(layers=(0, 2), seed=3), vec(layers=(0, 2), seed=4, concept="tempo")
    out = site_offsets(Steering((SteeringTerm(mood, 1.5, orthogonalize_against=(tempo,)),)), site="cross_attn",
                       num_layers=len(WIDTHS), dim=WIDTHS)
    assert {l: tuple(t.shape) for l, t in out.items()} == {0: (1, 4), 2: (1, 8)}
    for l in (0, 2):
        assert abs(float(out[l][0] @ tempo.tensor(l))) < 1e-5  # per layer, against that layer's direction
        t = tempo.tensor(l) / tempo.tensor(l).norm()
        expect = 1.5 * (mood.tensor(l) - (mood.tensor(l) @ t) * t)
        assert torch.allclose(out[l][0], expect, atol=1e-5)


def test_one_to_all_goes_to_layers_of_its_width_and_names_the_others():
    v = vec(layers=(2,), seed=5)
    out = site_offsets(Steering((SteeringTerm(v, 2.0, layers=(2, 3), one_to_all=2),)), site="cross_attn",
                       num_layers=len(WIDTHS), dim=WIDTHS)
    assert torch.equal(out[2], out[3]) and torch.allclose(out[3][0], 2.0 * v.tensor(2))
    with pytest.raises(EngineError, match=r"cannot go to layer 0 \(d=4\).*width 8: \[2, 3\]"):
        site_offsets(Steering((SteeringTerm(v, 2.0, layers=(0, 2), one_to_all=2),)), site="cross_attn",
                     num_layers=len(WIDTHS), dim=WIDTHS)


def test_a_vector_of_the_wrong_width_at_a_layer_is_refused():
    v = vec(layers=(0,))
    with pytest.raises(VectorMismatchError, match="has d=4 at layer 0, where site 'cross_attn' has d=8"):
        site_offsets(Steering((SteeringTerm(v, 1.0),)), site="cross_attn", num_layers=5, dim=[8, 8, 8, 8, 8])


def test_austeer_top_k_spans_layers_of_different_widths():
    from steerbridge.engine.extraction.austeer import global_topk_mask

    scores = {0: torch.tensor([0.1, 0.9, 0.2, 0.3]), 2: torch.tensor([0.5, -0.95, 0.0, 0.1, 0.2, 0.9, 0.0, 0.0])}
    mask = global_topk_mask(scores, 3)
    assert mask[0].tolist() == [False, True, False, False]  # 0.9 here ties 0.9 at layer 2: earlier layer first
    assert mask[2].tolist() == [False, True, False, False, False, True, False, False]
