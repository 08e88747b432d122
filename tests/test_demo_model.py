"""The shipped demo model, its vectors and its preset: they load, fit together and steer.

These run the committed weights (engine/models/demo/) through the engine's
normal path; the brightness check renders four short clips (~2 s of CPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "presets" / "demo.toml"
VECTORS = ROOT / "presets" / "vectors" / "demo"


@pytest.fixture(scope="module")
def demo():
    from steerbridge import engine
    model = engine.load_model("demo")
    yield model
    model.detach_steering()


def test_demo_folder_is_an_ordinary_strict_model_folder() -> None:
    from steerbridge.engine.runtime.source import DEMO_DIR, load_source

    config = json.loads((DEMO_DIR / "model_config.json").read_text())
    assert config["model_type"] == "diffusion_cond"
    assert (DEMO_DIR / "model.safetensors").stat().st_size <= 50 * 2**20
    loaded = load_source(str(DEMO_DIR))  # the same folder by path: same fingerprint as "demo"
    assert loaded.fingerprint == load_source("demo").fingerprint


def test_preset_and_every_shipped_vector_fit_the_demo_model(demo) -> None:
    from steerbridge import engine
    from steerbridge.bridge.presets.model import load_preset

    preset = load_preset(PRESET)
    assert preset.model_source() == "demo"
    names = {k.name for k in preset.knobs}
    assert {"tempo", "brightness", "mood", "instrument", "drums", "density"} <= names
    layers = json.loads((VECTORS / "layers.json").read_text())
    assert layers["fingerprint"] == demo.fingerprint
    for knob in preset.knobs:
        assert knob.midi is not None and knob.osc_address().startswith("/steer/knob/")
        if knob.is_tempo:  # sets the BPM of the model's beat input (and may steer a vector with it)
            assert demo.adapter.takes_bpm
            if not knob.vector:
                continue
        vector = engine.load_vector(preset.vector_path(knob), model=demo)  # refuses another model's vector
        assert vector.meta.fingerprint == demo.fingerprint
        made = layers["concepts"][knob.name]
        assert list(vector.layers) == made.get("file_layers", made["layers"])
        # a file written at every layer (--every-layer) steers only where its knob says: the chosen layers
        # (a tempo knob's were chosen with its BPM mapping, by sweeping both: any layers the file holds)
        if knob.is_tempo:
            assert set(knob.layers or vector.layers) <= set(vector.layers)
        else:
            assert list(knob.layers or vector.layers) == made["layers"]
    for entry in preset.knob("mood").orthogonalize_against:  # the tempo vector, the tempo knob's or a file
        vector = engine.load_vector(preset.ortho_path(entry), model=demo)
        assert vector.meta.fingerprint == demo.fingerprint and vector.meta.concept == "tempo"


def _tempo(audio, sr):  # librosa's estimate (the eval extra), else the numpy one
    try:
        from steerbridge.engine.evaluation.rhythm import librosa_tempo
        return librosa_tempo(audio, sr)
    except RuntimeError:
        from steerbridge.engine.evaluation.descriptors import tempo_bpm
        return tempo_bpm(audio, sr)


def _descriptor(name):
    from steerbridge.engine.evaluation import descriptors

    return {"brightness": descriptors.spectral_centroid, "mood": descriptors.mode_score, "tempo": _tempo}[name]


@pytest.mark.parametrize("name", ["brightness", "mood", "tempo"])
def test_shipped_knob_moves_its_descriptor(demo, name) -> None:
    """The knob's two ends, same prompt and seed: its descriptor moves the way the knob says, on two prompts.
    The tempo knob's ends are two BPMs given to the model's beat input (with its vector, if it has one, at the
    alphas they map to); the others steer their vectors."""
    from steerbridge import engine
    from steerbridge.bridge.presets.model import load_preset

    preset = load_preset(PRESET)
    knob = preset.knob(name)
    # a beat model's tempo knob gives the tempo the vector knobs' moves are rendered at (None: no tempo knob)
    tempo = next((k.default_alpha for k in preset.knobs if k.is_tempo), None)
    vector = engine.load_vector(preset.vector_path(knob), model=demo) if knob.vector else None
    measure = _descriptor(name)
    for prompt in ("piano loop", "bell song"):
        values = []
        for alpha in (knob.alpha_min, knob.alpha_max):
            request = engine.RenderRequest(prompt=prompt, seed=3, seconds=4.0, steps=preset.model.steps,
                                           cfg_scale=preset.model.cfg_scale, bpm=alpha if knob.is_tempo else tempo)
            steering = None if vector is None else engine.Steering(  # a tempo knob's vector follows its BPM
                terms=(engine.SteeringTerm(vector=vector, alpha=knob.vector_alpha(alpha), layers=knob.layers),),
                cfg_mode=preset.model.cfg_mode, alpha_units=preset.model.alpha_units)
            r = demo.render(request, steering=steering)
            values.append(measure(r.audio, r.sample_rate))
        assert values[1] > values[0], (name, prompt, values)
        if name != "mood":  # a ratio means nothing for a score that crosses zero
            assert values[1] > values[0] * 1.15, (name, prompt, values)


def test_main_job_renders_the_demo_sweep_without_an_audio_device(tmp_path, capsys) -> None:
    from steerbridge.bridge.cli import main

    assert main(["demo", "--render", "--stops", "2", "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.wav"))) == 2 and list(tmp_path.glob("*.png"))
    said = capsys.readouterr().out
    assert str(tmp_path.resolve()) in said and "brightness" in said
