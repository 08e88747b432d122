"""The demo model's codec, text conditioners and config, built through the upstream factory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from steerbridge.engine.adapters.sat import sat
from steerbridge.engine.demo.codec import MelCodec, warped_mel_filterbank
from steerbridge.engine.demo.corpus import make_clip
from steerbridge.engine.demo.model import CONFIG_PATH, build_model, export_model, load_model_folder
from steerbridge.engine.demo.text import MINILM_DIM, encode_texts
from steerbridge.engine.evaluation.descriptors import describe

SR = 16_000


@pytest.fixture(scope="module")
def clips() -> list:
    return [make_clip(60_000 + s) for s in range(16)]


@pytest.fixture(scope="module")
def codec(clips: list) -> MelCodec:
    codec = MelCodec(sample_rate=SR)
    codec.fit(torch.from_numpy(np.stack([c.audio for c in clips]))[:, None])
    return codec


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model().eval()


def test_codec_is_an_upstream_pretransform(codec: MelCodec) -> None:
    assert isinstance(codec, sat("pretransforms").Pretransform)
    assert (codec.downsampling_ratio, codec.io_channels, codec.encoded_channels) == (250, 1, 96)
    assert codec.enable_grad is False and codec.is_discrete is False
    # Only the fitted statistics are state; the filterbank is rebuilt from the config.
    assert set(codec.state_dict()) == {"band_mean", "band_std"}


def test_filterbank_has_no_empty_band_and_semitone_resolution() -> None:
    fb = warped_mel_filterbank(sample_rate=SR, n_fft=1024, n_bands=96, f_min=30.0, break_hz=250.0)
    assert fb.shape == (96, 513)
    assert bool((fb.sum(dim=1) > 0).all())
    freqs = torch.linspace(0, SR / 2, 513)
    centres = (fb * freqs).sum(dim=1) / fb.sum(dim=1)
    in_range = centres[(centres > 300) & (centres < 2000)]
    semitones = 12 * torch.log2(in_range[1:] / in_range[:-1])
    # Thirds stay apart: neighbouring bands about a semitone or less apart
    # (a 700 Hz-break mel with 96 bands is 1.44 semitones apart at 300 Hz).
    assert float(semitones.max()) <= 1.2  # measured 1.13 (at ~300 Hz), mean 0.81


def test_encode_shape_and_normalisation(codec: MelCodec, clips: list) -> None:
    z = codec.encode(torch.from_numpy(np.stack([c.audio for c in clips]))[:, None])
    assert z.shape == (16, 96, 256)
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(z.std()) == pytest.approx(1.0, abs=0.01)
    with pytest.raises(ValueError, match="multiple of hop 250"):
        codec.encode(torch.zeros(1, 1, 1001))


def test_generated_like_latents_decode_without_blowing_up(codec: MelCodec) -> None:
    """Latents no real audio gives (as a model samples them) must not explode in decoding
    (the pseudo-inverse did: ~60 dB too loud, all energy near 250 Hz)."""
    z = torch.randn(2, codec.encoded_channels, 64, generator=torch.Generator().manual_seed(0)) * 1.5
    z[1, 60:] += 2.0  # bright: high bands up
    out = codec.decode(z)[:, 0].numpy()
    assert np.isfinite(out).all() and np.abs(out).max() <= 0.99 + 1e-6
    assert describe(out[1], SR).centroid_hz > describe(out[0], SR).centroid_hz + 300


def test_decode_is_deterministic_and_keeps_descriptors(codec: MelCodec, clips: list) -> None:
    audio = torch.from_numpy(np.stack([c.audio for c in clips[:8]]))[:, None]
    z = codec.encode(audio)
    out = codec.decode(z)
    assert out.shape == audio.shape
    assert torch.equal(out, codec.decode(z))
    assert torch.equal(out[3:4], codec.decode(z[3:4]))  # independent of batch position
    for clip, y in zip(clips[:8], out[:, 0].numpy()):
        a, b = describe(clip.audio, SR), describe(y, SR)
        assert b.centroid_hz == pytest.approx(a.centroid_hz, rel=0.1)
        if abs(a.mode_score) >= 0.05:  # a near-neutral clip may land either side of 0
            assert np.sign(b.mode_score) == np.sign(a.mode_score)
        assert b.onset_rate == pytest.approx(a.onset_rate, abs=0.75)


def test_minilm_loads_offline_and_encodes_deterministically(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    states, mask = encode_texts(["happy fast piano loop", "sad slow piano loop"], max_length=24)
    assert states.shape == (2, 24, MINILM_DIM) and mask.shape == (2, 24)
    assert int(mask[0].sum()) == 6  # [CLS] happy fast piano loop [SEP]
    again, _ = encode_texts(["happy fast piano loop"], max_length=24)
    assert torch.equal(again[0], states[0])
    assert not torch.allclose(states[0, 1], states[1, 1])  # "happy" vs "sad"


def test_state_dict_holds_no_frozen_encoder_weights(model: torch.nn.Module) -> None:
    keys = set(model.state_dict())
    cond = {k for k in keys if k.startswith("conditioner.")}
    assert cond == {f"conditioner.conditioners.{c}.{m}.{p}" for c in ("prompt", "prompt_pooled")
                    for m in ("norm", "proj_out") for p in ("weight", "bias")}
    assert {k for k in keys if k.startswith("pretransform.")} == {"pretransform.band_mean",
                                                                   "pretransform.band_std"}
    assert not any("encoder.layer" in k or "word_embeddings" in k for k in keys)


def test_conditioners_give_cross_attention_tokens_and_global_embedding(model: torch.nn.Module) -> None:
    cond = model.conditioner([{"prompt": "bright happy bell tune"}, {"prompt": "dark sad pad"}], "cpu")
    tokens, mask = cond["prompt"]
    pooled, _ = cond["prompt_pooled"]  # found through default_keys: metadata has only "prompt"
    assert tokens.shape == (2, 24, 256) and pooled.shape == (2, 1, 256)
    assert torch.all(tokens[~mask] == 0)  # padding carries nothing into cross-attention
    inputs = model.get_conditioning_inputs(cond)
    assert inputs["cross_attn_cond"].shape == (2, 24, 256)
    assert inputs["global_cond"].shape == (2, 256)


def test_demo_config_architecture(model: torch.nn.Module) -> None:
    config = json.loads(CONFIG_PATH.read_text())
    assert config["model"]["diffusion"]["config"]["depth"] >= 8
    assert len(model.model.model.transformer.layers) == config["model"]["diffusion"]["config"]["depth"]
    assert model.diffusion_objective == "rectified_flow"
    dit = config["model"]["diffusion"]["config"]
    pre = config["model"]["pretransform"]["config"]
    assert dit["io_channels"] * dit["patch_size"] <= dit["embed_dim"]  # a token's values fit its embedding
    x = torch.randn(2, pre["n_bands"], config["sample_size"] // pre["hop"])
    cond = model.conditioner([{"prompt": "piano"}] * 2, "cpu")
    with torch.no_grad():
        out = model(x, torch.full((2,), 0.5), cond=cond)
    assert out.shape == x.shape


def test_export_loads_strictly_and_fits_the_size_budget(model: torch.nn.Module, tmp_path) -> None:
    size = export_model(model, tmp_path)  # raises if the strict reload fails
    assert size <= 50e6
    assert json.loads((tmp_path / "model_config.json").read_text()) == json.loads(CONFIG_PATH.read_text())
    from safetensors.torch import load_file

    state = load_file(str(tmp_path / "model.safetensors"))
    assert state["pretransform.band_std"].dtype == torch.float32  # statistics stay exact
    loaded = load_model_folder(tmp_path)
    w = "model.model.transformer.project_in.weight"
    assert torch.equal(loaded.state_dict()[w], model.state_dict()[w].half().float())
    assert not any(p.requires_grad for p in loaded.parameters())
