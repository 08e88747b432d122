"""benchmarks/_entangle.py (via demo_entanglement.py) on the tiny preset: runs end to end, and the mood offset
the engine applies after orthogonalising is orthogonal to the tempo vector where the two share layers."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "presets" / "tiny.toml"


def _script(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_entanglement_on_the_tiny_preset(tmp_path: Path) -> None:
    # 1 prompt x 2 seeds, 3 alphas, 1 s renders: 10 renders in all (the part's own default is 7 alphas, 3 seeds)
    assert _script("demo_entanglement").main(["--preset", str(TINY), "--quick", "--prompts", "keys track",
                                              "--alphas", "3", "--entangle-seeds", "2", "--seed", "7",
                                              "--out", str(tmp_path)]) == 0
    e = json.loads((tmp_path / "entangle.json").read_text())["entangle"]
    assert e["alphas"] == [-4.0, 0.0, 4.0] and e["coupling"]["mood_tempo_coupling"] == 0.4
    assert e["seeds"] == [7, 8] and e["renders"] == 10
    v = e["variants"]["preset"]
    assert list(e["variants"]) == ["preset"]  # tiny's mood and tempo share every layer: no extra variants
    assert not v["noop"] and v["shared_layers"] == [0, 1, 2, 3]
    layers = [v["layers"][str(l)] for l in v["shared_layers"]]
    assert max(abs(x["cos_raw"]) for x in layers) > 0.05  # the raw vectors overlap: there is something to remove
    assert min(x["norm_kept"] for x in layers) < 0.99
    for x in layers:  # ... and the offset the engine applies has none of tempo left, at every shared layer
        assert abs(x["cos_applied"]) < 1e-5 and 0.0 < x["norm_kept"] <= 1.0 + 1e-6
    raw, ortho = v["vectors"]["raw"], v["vectors"]["orthogonalised"]
    for d in ("mode_score", "transcribed_mode", "onset_rate", "librosa_tempo"):
        assert len(raw[d]["values"]) == 2 and all(len(row) == 3 for row in raw[d]["values"])  # a row per seed
        for r, o in zip(raw[d]["values"], ortho[d]["values"]):
            assert r[1] == o[1]  # alpha 0: the same reference render
    for d in ("mode_score", "onset_rate"):  # the package's own descriptors: always finite
        assert math.isclose(raw[d]["shift"], raw[d]["mean"][-1] - raw[d]["mean"][0])
    assert raw["onset_rate"]["values"] != ortho["onset_rate"]["values"] or raw["mode_score"]["values"] != \
        ortho["mode_score"]["values"]  # the orthogonalised sweep was really rendered
    kept = v["mood_kept"]["mode_score"]
    assert kept is None or math.isclose(kept, ortho["mode_score"]["shift"] / raw["mode_score"]["shift"])
    assert (tmp_path / "entangle.png").stat().st_size > 1000
    md = (tmp_path / "entangle.md").read_text()
    assert "| preset | orthogonalised |" in md and "![entanglement](entangle.png)" in md


def test_no_shared_layer_is_reported_as_a_no_op(tmp_path: Path) -> None:
    """The demo preset's case (mood at layer 0, tempo at 2-3): the engine leaves mood as it is."""
    from steerbridge.bridge.engine_link.worker import JobRunner
    from steerbridge.bridge.presets.model import load_preset
    from steerbridge.engine import load_vector, save_vector
    from steerbridge.engine.runtime.vectors import ConceptVector

    entangle = _script("_entangle")
    runner = JobRunner("tiny")
    preset = load_preset(TINY)
    for name, layers in (("mood", (0,)), ("tempo", (2, 3))):
        vec = load_vector(preset.vector_path(name), model=runner.model)
        save_vector(ConceptVector({l: vec.tensor(l) for l in layers}, vec.meta), tmp_path / f"{name}.safetensors")
        preset = preset.with_knob(dataclasses.replace(preset.knob(name), vector=str(tmp_path / f"{name}.safetensors"),
                                                      layers=None, orthogonalize_against=()))
    ortho = preset.with_knob(dataclasses.replace(preset.knob("mood"), orthogonalize_against=("tempo",)))
    geo = entangle._geometry(runner, preset, ortho)
    assert geo["noop"] and geo["shared_layers"] == [] and geo["layers"]["0"]["cos_raw"] is None
    assert geo["layers"]["0"]["norm_kept"] == 1.0


def test_reextracted_vector_is_found_from_a_relative_output_folder(tmp_path: Path, monkeypatch) -> None:
    """`--out docs/...` is relative to the cwd, while a preset resolves vector paths against its own folder."""
    import types

    from steerbridge.bridge.engine_link.worker import JobRunner
    from steerbridge.bridge.presets.model import load_preset

    entangle = _script("_entangle")
    monkeypatch.chdir(tmp_path)
    sw = types.SimpleNamespace(runner=JobRunner("tiny"), log=lambda msg: None)
    moved, info = entangle._reextract(sw, load_preset(TINY), "tempo", [1], Path("out") / "tempo_at_1.safetensors")
    assert moved.vector_path("tempo") == tmp_path / "out" / "tempo_at_1.safetensors"
    assert moved.vector_path("tempo").is_file() and info["layers"] == [1]


def test_a_tempo_knob_is_swapped_for_the_tempo_vector_file_mood_names() -> None:
    """A beat model's tempo knob sets the BPM: mood is orthogonalised against the tempo vector file it names,
    and the sweep renders at the tempo knob's default BPM."""
    from steerbridge.bridge.presets.model import Knob, load_preset

    entangle = _script("_entangle")
    tiny = load_preset(TINY)
    file = "vectors/tiny/tempo.safetensors"
    beat = tiny.with_knob(Knob(name="tempo", target="bpm", alpha_min=80.0, alpha_max=120.0, default=0.25))
    preset, note = entangle._tempo_as_vector(beat)
    assert preset is None and "names no tempo vector file" in note
    beat = beat.with_knob(dataclasses.replace(beat.knob("mood"), orthogonalize_against=(file,)))
    preset, note = entangle._tempo_as_vector(beat)
    assert preset.scene.bpm == 90.0 and "90 BPM" in note
    assert not preset.knob("tempo").is_tempo and preset.vector_path("tempo") == tiny.vector_path("tempo")
    assert preset.knob("mood").orthogonalize_against == ("tempo",)
    own = beat.with_knob(dataclasses.replace(beat.knob("tempo"), vector="vectors/tiny/brightness.safetensors",
                                             vector_alpha_min=-1.0, vector_alpha_max=1.0))
    preset, note = entangle._tempo_as_vector(own)  # a tempo knob with a vector: its own, not mood's file
    assert preset.vector_path("tempo") == tiny.vector_path("brightness") and not preset.knob("tempo").is_tempo
    assert preset.knob("mood").orthogonalize_against == (file, "tempo") and preset.scene.bpm == 90.0
    assert entangle._tempo_as_vector(tiny) == (tiny, "")  # a tempo vector knob: nothing to swap
