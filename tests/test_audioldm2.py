"""AudioLDM2's U-Net on its tiny random-weight config of the real classes: layer names, per-layer widths, and
vectors whose widths follow the levels through extraction, files, steering and One-to-All.

(The steering, CFG-layout, patching, render and serve acceptance tests run for it with the other diffusers families
in tests/test_families*.py.)"""

from __future__ import annotations

import pytest
import torch

from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.render import RenderRequest, load_model
from steerbridge.engine.runtime.steering import Steering, SteeringTerm, site_widths
from steerbridge.engine.runtime.vectors import load_vector, save_vector

NAMES = ["down.0.attn.1", "down.0.attn.2", "mid.attn.1", "mid.attn.2", "up.1.attn.1", "up.1.attn.2", "up.1.attn.4",
         "up.1.attn.5"]
WIDTHS = (16, 16, 32, 32, 16, 16, 16, 16)


@pytest.fixture(scope="module")
def model():
    return load_model("tiny:audioldm2")


def test_layers_are_the_text_reading_attention_blocks_by_name(model):
    adapter = model.adapter
    assert [adapter.layer_name(l) for l in range(model.num_layers)] == NAMES
    assert site_widths(adapter, "cross_attn") == site_widths(adapter, "block") == WIDTHS
    unet = adapter.pipe.unet
    assert adapter.site_slot("cross_attn", 4) == (unet.up_blocks[1].attentions[1].transformer_blocks[0], "attn2")
    # the self-attention-only blocks ([None, ...] in cross_attention_dim) never read the text: not layers
    assert unet.up_blocks[1].attentions[0].transformer_blocks[0].attn2.is_cross_attention is False
    with pytest.raises(EngineError, match="different width per layer"):
        model.site_dim("cross_attn")


def test_extracted_vector_has_each_levels_width_and_round_trips(model, tmp_path):
    from steerbridge.engine import extract_caa

    vec = extract_caa(model, positive=["bright synth"], negative=["dark synth"], concept="bright", seconds=0.5,
                      steps=2)
    assert vec.widths == dict(enumerate(WIDTHS))
    back = load_vector(save_vector(vec, tmp_path / "bright.safetensors"), model=model)
    assert back.widths == vec.widths


def test_one_to_all_within_a_level_and_refused_across(model):
    from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta

    v = ConceptVector({4: torch.randn(16, generator=torch.Generator().manual_seed(1))},
                      VectorMeta(concept="v", site="cross_attn", method="test", fingerprint=model.fingerprint))
    same_level = Steering((SteeringTerm(v, 1.0, layers=(4, 5, 6, 7), one_to_all=4),))
    model.handle.attach()
    try:
        model.handle.set(same_level)
        for l in (4, 5, 6, 7):
            assert torch.equal(model.handle.wrappers[("cross_attn", l)].offset[0], v.tensor(4))
        with pytest.raises(EngineError, match=r"cannot go to layer 2 \(d=32\)"):
            model.handle.set(Steering((SteeringTerm(v, 1.0, layers=(2, 4), one_to_all=4),)))
    finally:
        model.detach_steering()


def test_steering_every_level_at_once_changes_the_render(model):
    g = torch.Generator().manual_seed(0)
    from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta

    v = ConceptVector({l: torch.randn(w, generator=g) for l, w in enumerate(WIDTHS)},
                      VectorMeta(concept="v", site="block", method="test", fingerprint=model.fingerprint))
    req = RenderRequest(prompt="warm pad", seconds=0.5, steps=2)
    plain = model.render(req).audio
    steered = model.render(req, steering=Steering((SteeringTerm(v, 1.0),))).audio
    assert plain.shape == steered.shape == (1, 2000)  # mono, 0.5 s at 4 kHz
    assert abs(steered - plain).max() > 1e-4
    model.detach_steering()
    assert (model.render(req).audio == plain).all()
