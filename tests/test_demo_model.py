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
        vector = engine.load_vector(preset.vector_path(knob), model=demo)  # refuses another model's vector
        assert vector.meta.fingerprint == demo.fingerprint
        assert list(vector.layers) == layers["concepts"][knob.name]["layers"]
        assert knob.midi is not None and knob.osc_address().startswith("/steer/knob/")


def test_shipped_brightness_vector_raises_the_spectral_centroid(demo) -> None:
    from steerbridge import engine
    from steerbridge.bridge.presets.model import load_preset
    from steerbridge.engine.evaluation.descriptors import spectral_centroid

    preset = load_preset(PRESET)
    knob = preset.knob("brightness")
    vector = engine.load_vector(preset.vector_path(knob), model=demo)
    for prompt in ("piano loop", "bell song"):
        request = engine.RenderRequest(prompt=prompt, seed=3, seconds=2.0, steps=preset.model.steps,
                                       cfg_scale=preset.model.cfg_scale)
        centroids = []
        for alpha in (0.0, knob.alpha_max):
            steering = engine.Steering(terms=(engine.SteeringTerm(vector=vector, alpha=alpha, layers=knob.layers),),
                                       cfg_mode=preset.model.cfg_mode, alpha_units=preset.model.alpha_units)
            r = demo.render(request, steering=steering)
            centroids.append(spectral_centroid(r.audio, r.sample_rate))
        assert centroids[1] > centroids[0] * 1.15, (prompt, centroids)


def test_main_job_renders_the_demo_sweep_without_an_audio_device(tmp_path, capsys) -> None:
    from steerbridge.bridge.cli import main

    assert main(["demo", "--render", "--stops", "2", "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.wav"))) == 2 and list(tmp_path.glob("*.png"))
    said = capsys.readouterr().out
    assert str(tmp_path.resolve()) in said and "brightness" in said
