"""DiffMean for autoregressive models: averaged over generated frames (MusicGen) and at the prompt's EOS position
(MusicGen-Melody, text prepended), each recovering a direction known in closed form on a private tiny model."""

from __future__ import annotations

import pytest
import torch

from steerbridge.engine import extract_caa
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.render import load_model

POS, NEG = "bright synth loop", "gloomy synth loop"  # same token count


def test_frames_mean_recovers_the_cross_attention_difference():
    model = load_model("tiny:musicgen")  # private copy: layer 1's queries are zeroed
    layer = 1
    attn = model.adapter.site_slot("cross_attn", layer)[0].inner.inner  # the MusicgenAttention itself
    with torch.no_grad():
        attn.q_proj.weight.zero_()
    # Uniform attention over the prompt's real tokens: out_proj(W_v mean(context)), the same at every frame.
    model.adapter.encode(POS, seconds=0.25)
    contexts = {}
    for prompt in (POS, NEG):
        ids = model.adapter.encode(prompt, seconds=0.25)
        mask = ids["attention_mask"][0].bool()
        with torch.no_grad():
            mg = model.adapter.bundle.model
            states = mg.text_encoder(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])[0][0]
            if hasattr(mg, "enc_to_dec_proj"):
                states = mg.enc_to_dec_proj(states)
            contexts[prompt] = attn.out_proj(attn.v_proj(states[mask]).mean(0))
    want = contexts[POS] - contexts[NEG]
    assert want.norm() > 1e-3
    vec = extract_caa(model, positive=[POS], negative=[NEG], concept="bright", site="cross_attn", layers=[layer],
                      seconds=0.25, steps=4, cfg_scale=3.0)
    assert vec.meta.extra["position"] == "frames"  # the family's default
    assert torch.allclose(vec.tensor(layer), want, atol=1e-5)
    per_frame = extract_caa(model, positive=[POS], negative=[NEG], concept="b", site="cross_attn", layers=[layer],
                            seconds=0.25, steps=4, cfg_scale=3.0, per_step=True, normalize=True)
    frames = model.adapter.frames_for(0.25)
    assert per_frame.tensor(layer).shape == (frames, model.site_dim("cross_attn"))  # one row per generated frame
    assert torch.allclose(per_frame.tensor(layer), (want / want.norm()).expand(frames, -1), atol=1e-4)


def test_eos_state_recovers_the_prepended_text_difference():
    model = load_model("tiny:musicgen-melody")  # private copy: layers 0..2 pass the residual stream through
    layer = 2
    mg = model.adapter.bundle.model
    with torch.no_grad():
        for l in range(layer + 1):
            block = mg.decoder.model.decoder.layers[l].inner.inner  # behind the adapter's tuple shim
            block.self_attn.out_proj.weight.zero_()
            block.fc2.weight.zero_()
    # Then layer 2's output at the EOS position is the projected text state there plus its position embedding;
    # the position is the same for both prompts, so DiffMean is the projected text states' difference.
    states = {}
    for prompt in (POS, NEG):
        ids = model.adapter.encode(prompt, seconds=0.25)
        with torch.no_grad():
            h = mg.text_encoder(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])[0][0]
            states[prompt] = mg.enc_to_dec_proj(h)[-1]
    assert model.adapter.eos_position == mg.config.chroma_length + ids["input_ids"].shape[1] - 1
    want = states[POS] - states[NEG]
    vec = extract_caa(model, positive=[POS], negative=[NEG], concept="bright", site="block", layers=[layer],
                      seconds=0.25, steps=4, cfg_scale=3.0)
    assert vec.meta.extra["position"] == "eos"  # the study's choice is this family's default
    assert torch.allclose(vec.tensor(layer), want, atol=1e-5)
    frames = extract_caa(model, positive=[POS], negative=[NEG], concept="b", site="block", layers=[layer],
                         seconds=0.25, steps=4, cfg_scale=3.0, position="frames")
    assert not torch.allclose(frames.tensor(layer), want, atol=1e-3)  # a different position, a different vector


def test_positions_are_refused_where_they_do_not_exist():
    musicgen = load_model("tiny:musicgen")
    with pytest.raises(EngineError, match="EOS position exists where the text is prepended"):
        extract_caa(musicgen, positive=[POS], negative=[NEG], concept="c", layers=[0], seconds=0.25, steps=4,
                    position="eos")
    sat = load_model("tiny")
    with pytest.raises(EngineError, match="for autoregressive families"):
        extract_caa(sat, positive=[POS], negative=[NEG], concept="c", layers=[0], seconds=0.5, steps=2,
                    position="frames")
    with pytest.raises(EngineError, match="is not one of"):
        extract_caa(sat, positive=[POS], negative=[NEG], concept="c", layers=[0], position="middle")
