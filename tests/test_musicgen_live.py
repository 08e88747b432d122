"""MusicGen end to end: `steerbridge render --model tiny:musicgen --steer ...` writes the exact steered WAV (both
guidance branches by default for this family), and `serve` on a MusicGen preset answers an OSC knob move with the
exact render, equal to a direct render at that alpha."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from steerbridge import engine
from steerbridge.bridge.audio.wavfile import read_wav
from steerbridge.engine.runtime.steering import Steering, SteeringTerm
from support.serve_knob import exact_render_after_knob

PRESET = """\
[model]
source = "tiny:{family}"
steps = 4
cfg_scale = 3.0
cfg_mode = "both"   # the MusicGen study steers both guidance branches

[scene]
prompt = "test loop with piano"
seed = 7
seconds = 0.25

[[knob]]
name = "mood"
vector = "mood.safetensors"
alpha_min = -8.0
alpha_max = 8.0
default = 0.5
stops = 2
"""


def random_vector(model, path: Path) -> engine.ConceptVector:
    g = torch.Generator().manual_seed(11)
    d = model.site_dim("block")
    vec = engine.ConceptVector({l: torch.randn(d, generator=g) for l in range(model.num_layers)},
                               engine.VectorMeta(concept="mood", site="block", method="test",
                                                 fingerprint=model.fingerprint))
    engine.save_vector(vec, path)
    return vec


def test_render_cli_writes_the_exact_steered_wav_with_both_branches(tmp_path):
    from steerbridge.bridge.cli import main

    model = engine.load_model("tiny:musicgen")
    vec = random_vector(model, tmp_path / "mood.safetensors")
    out = tmp_path / "out"
    code = main(["render", "--model", "tiny:musicgen", "--steer", f"{tmp_path / 'mood.safetensors'}=1.25",
                 "--prompt", "warm pad", "--seconds", "0.25", "--cfg-scale", "3", "--out", str(out), "--quiet"])
    assert code == 0
    (wav,) = sorted(out.glob("*.wav"))
    audio, rate = read_wav(wav)
    req = engine.RenderRequest(prompt="warm pad", seed=0, seconds=0.25, cfg_scale=3.0)
    both = model.render(req, steering=Steering((SteeringTerm(vec, 1.25),), cfg_mode="both")).audio
    cond = model.render(req, steering=Steering((SteeringTerm(vec, 1.25),), cfg_mode="cond_only")).audio
    assert rate == model.sample_rate and np.abs(audio - both).max() < 1e-5
    assert np.abs(both - cond).max() > 1e-4  # the default really is both branches
    assert main(["render", "--model", "tiny:musicgen", "--steer", f"{tmp_path / 'mood.safetensors'}=1.25",
                 "--cfg-mode", "cond_only", "--seconds", "0.25", "--cfg-scale", "3", "--prompt", "warm pad",
                 "--out", str(tmp_path / "c"), "--quiet", "--json"]) == 0
    (wav,) = sorted((tmp_path / "c").glob("*.wav"))
    assert np.abs(read_wav(wav)[0] - cond).max() < 1e-5


def test_extract_cli_on_melody_records_the_eos_state(tmp_path, capsys):
    from steerbridge.bridge.cli import main

    out = tmp_path / "v.safetensors"
    assert main(["extract", "--model", "tiny:musicgen-melody", "--concept", "mood", "--positive", "happy song",
                 "--negative", "sad song", "--site", "block", "--seconds", "0.25", "--cfg-scale", "3", "--normalize",
                 "--out", str(out), "--quiet", "--json"]) == 0
    vec = engine.load_vector(out)
    assert vec.meta.extra["position"] == "eos" and vec.layers == (0, 1, 2, 3)
    assert main(["extract", "--model", "tiny:musicgen", "--concept", "mood", "--positive", "a", "--negative", "b",
                 "--position", "eos", "--seconds", "0.25", "--out", str(out), "--quiet"]) == 2


@pytest.mark.parametrize("family", ["musicgen", "musicgen-melody"])
def test_osc_knob_brings_the_exact_render(tmp_path, family):
    model = engine.load_model(f"tiny:{family}")
    vector = random_vector(model, tmp_path / "mood.safetensors")
    (tmp_path / "preset.toml").write_text(PRESET.format(family=family))
    # alpha -4.0: between the two stops, so no pre-rendered loop; the exact render must come
    path, kind, alpha = exact_render_after_knob(tmp_path / "preset.toml", "mood", 0.25, loops=tmp_path / "loops")
    assert alpha == -4.0
    assert kind == "exact" and "mood-4.000" in path
    audio, rate = read_wav(Path(path))
    req = engine.RenderRequest(prompt="test loop with piano", seed=7, seconds=0.25, steps=4, cfg_scale=3.0)
    direct = model.render(req, steering=Steering((SteeringTerm(vector, -4.0),), cfg_mode="both"))
    plain = model.render(req)
    # MusicGen is mono; the loop is played (and written) on the output's two channels, each the render.
    assert rate == direct.sample_rate and audio.shape == (2, direct.audio.shape[1])
    assert np.abs(audio - direct.audio).max() < 1e-5  # the (float32) WAV holds the exact render
    assert np.abs(audio - plain.audio).max() > 1e-4  # and it is steered
