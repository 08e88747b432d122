"""CAA extraction recovers a direction known in closed form."""

from __future__ import annotations

import pytest
import torch

from steerbridge.engine import extract_caa
from steerbridge.engine.extraction.caa import expand_templates
from steerbridge.engine.runtime.errors import EngineError


@pytest.fixture()
def uniform_attention(tiny_model):
    """Make layer 1's cross-attention output depend on the prompt only.

    With to_q = 0 every query attends uniformly over the context tokens (masks
    are off upstream), so the output is to_out(W_v @ mean(projected context tokens)):
    the same for every frame, step and noise. Restored afterwards.
    """
    attn = tiny_model.adapter._block_objs[1].cross_attn
    saved = attn.to_q.weight.detach().clone()
    with torch.no_grad():
        attn.to_q.weight.zero_()
    yield attn
    with torch.no_grad():
        attn.to_q.weight.copy_(saved)


def expected_output(model, attn, prompt):
    cond = model.adapter.encode(prompt, seconds=1.0)
    ctx = model.adapter.dit.to_cond_embed(cond["cross_attn_cond"])[0]  # the DiT projects tokens first
    d = attn.to_out.weight.shape[0]
    v = attn.to_kv(ctx)[:, d:]  # the value half
    return attn.to_out(v.mean(0))


def test_caa_recovers_the_one_word_difference(tiny_model, uniform_attention):
    vec = extract_caa(tiny_model, positive=["bright synth loop"], negative=["dark synth loop"], concept="brightness",
                      layers=[1], seconds=1.0, steps=3, cfg_scale=6.0)
    with torch.no_grad():
        want = expected_output(tiny_model, uniform_attention, "bright synth loop") - \
            expected_output(tiny_model, uniform_attention, "dark synth loop")
    assert want.norm() > 1e-3  # the two prompts really differ at this layer
    assert torch.allclose(vec.tensor(1), want, atol=1e-5)
    assert vec.meta.fingerprint == tiny_model.fingerprint and vec.site == "cross_attn"
    assert vec.meta.site_norms[1] > 0


def test_per_step_and_normalised(tiny_model, uniform_attention):
    vec = extract_caa(tiny_model, positive=["bright synth"], negative=["dark synth"], concept="b", layers=[1, 2],
                      seconds=1.0, steps=3, per_step=True, normalize=True)
    assert vec.tensor(1).shape == (3, tiny_model.site_dim("cross_attn"))
    assert torch.allclose(vec.tensor(2).norm(dim=-1), torch.ones(3), atol=1e-5)
    # layer 1 is prompt-only here, so every step's direction is the same
    assert torch.allclose(vec.tensor(1)[0], vec.tensor(1)[2], atol=1e-5)


def test_templates_and_errors(tiny_model):
    assert expand_templates(["happy song, {base}", "joyful"], ["piano", "pad"]) == \
        ["happy song, piano", "happy song, pad", "joyful"]
    with pytest.raises(EngineError, match="positive"):
        extract_caa(tiny_model, positive=[], negative=["x"], concept="c")
    with pytest.raises(EngineError, match="out of range"):
        extract_caa(tiny_model, positive=["a"], negative=["b"], concept="c", layers=[99])
