"""`serve` on a preset for a diffusers family: an OSC knob move brings the exact render, the same audio a direct
render at that alpha gives (tiny random-weight configs of the real classes, in-process engine, WAV output)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from steerbridge.bridge.audio.wavfile import read_wav
from support.serve_knob import exact_render_after_knob, knob_preset


@pytest.mark.parametrize("family", ["sao-diffusers", "ace-step", "sa3", "audioldm2"])
def test_osc_knob_brings_the_exact_render(tmp_path, family):
    from steerbridge import engine
    from steerbridge.engine.runtime.steering import Steering, SteeringTerm

    model = engine.load_model(f"tiny:{family}")
    vector = engine.extract_caa(model, positive=["happy song"], negative=["sad song"], concept="mood",
                                seconds=0.5, steps=2, normalize=True)
    engine.save_vector(vector, tmp_path / "mood.safetensors")
    (tmp_path / "preset.toml").write_text(knob_preset(f"tiny:{family}"))
    # alpha -1.0: between the two stops, so no pre-rendered loop; the exact render must come
    path, kind, alpha = exact_render_after_knob(tmp_path / "preset.toml", "mood", 0.25, loops=tmp_path / "loops")
    assert alpha == -1.0
    assert kind == "exact" and "mood-1.000" in path
    audio, rate = read_wav(Path(path))
    direct = model.render(engine.RenderRequest(prompt="test loop with piano", seed=7, seconds=0.5, steps=2),
                          steering=Steering((SteeringTerm(vector, -1.0),)))
    plain = model.render(engine.RenderRequest(prompt="test loop with piano", seed=7, seconds=0.5, steps=2))
    want, unsteered = direct.audio, plain.audio
    if want.shape[0] == 1 and audio.shape[0] == 2:  # a mono model (AudioLDM2) plays on both channels
        want, unsteered = np.repeat(want, 2, axis=0), np.repeat(unsteered, 2, axis=0)
    assert rate == direct.sample_rate and audio.shape == want.shape
    assert np.abs(audio - want).max() < 1e-5  # the (float32) WAV holds the exact render
    assert np.abs(audio - unsteered).max() > 1e-4  # and it is steered
