"""benchmarks/demo_acceptance.py: the --quick smoke run on the tiny preset (~20 s of CPU) and its per-knob targets."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("demo_acceptance", ROOT / "benchmarks" / "demo_acceptance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_run_on_the_tiny_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from steerbridge.bridge.presets.model import load_preset

    preset = load_preset(ROOT / "presets" / "tiny.toml")
    assert _script().main(["--preset", str(ROOT / "presets" / "tiny.toml"), "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "acceptance.json").read_text())
    assert "MiniLM" in result["follow"]["skipped"]  # the tiny model is not the demo family
    knobs = result["steering"]["knobs"]
    assert list(knobs) == list(preset.knob_names())
    for knob in preset.knobs:
        k = knobs[knob.name]
        assert len(k["alphas"]) == 7 and k["alphas"][0] == knob.alpha_min and k["alphas"][-1] == knob.alpha_max
        assert k["reference"]["alpha"] == 0.0 and len(k["reference"]["descriptors"]) == len(k["prompts"])
        assert all(len(row) == 7 for row in k["descriptors"])
        assert isinstance(k["rho_mean"], float) and -1.0 <= k["rho_mean"] <= 1.0
        assert isinstance(k["pass"], bool) and k["prompt_swap_distance"] >= 0
        for picture in k["pictures"].values():
            assert (tmp_path / picture).stat().st_size > 1000
    # alpha 0 inside the sweep is the reference render itself: the same descriptor
    mood = knobs["mood"]
    assert mood["reference"]["in_sweep"]
    assert [row[mood["alphas"].index(0.0)] for row in mood["descriptors"]] == mood["reference"]["descriptors"]
    speed = result["speed"]
    assert speed["steps"] == preset.model.steps and speed["loop_s"] == 4.0
    assert math.isclose(speed["realtime_factor"], 4.0 / speed["render_s"])
    assert result["passed"] is False and result["gates"]["follow_tempo"] is None  # not measured: not a pass
    assert "| tempo (gating) |" in (tmp_path / "acceptance.md").read_text()
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "acceptance_pass: False" and "steer_brightness_rho: " in "\n".join(out)


def test_each_knob_is_judged_by_its_own_targets() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _targets import STEER_TARGETS, missed_targets

    def knob(name, rho, shift=0.5, second=None, gap=None, within=True):
        res = {"targets": STEER_TARGETS[name], "rho_mean": rho, "relative_shift": shift, "all_within": within,
               "second_opinions": {k: {"rho_mean": v} for k, v in (second or {}).items()}}
        return res if gap is None else {**res, "shift_over_corpus_gap": gap}

    assert missed_targets(knob("density", 0.85, shift=0.01)) == []  # rho >= 0.8 is density's only bar
    assert missed_targets(knob("brightness", 0.95, shift=0.1)) == ["shift"]
    assert missed_targets(knob("tempo", 0.95, second={"librosa_tempo": 0.5})) == ["second opinion rho"]
    assert missed_targets(knob("tempo", 0.95)) == ["second opinion rho"]  # not measured: not met
    assert missed_targets(knob("mood", 0.92, second={"transcribed_mode": 0.95}, gap=0.3)) == ["half the corpus gap"]
    assert missed_targets(knob("mood", 0.92, second={"transcribed_mode": 0.95}, gap=0.6)) == []
    assert missed_targets(knob("drums", math.nan, within=False)) == ["rho", "distance"]


def test_timekeeping_tells_a_steady_beat_from_onsets_at_random_times() -> None:
    import sys

    pytest.importorskip("librosa", reason="librosa comes with the eval extra")
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from demo_timekeeping import beat_measures

    sr = 22050

    def clicks(times: np.ndarray) -> np.ndarray:
        x = np.zeros(4 * sr, dtype=np.float32)
        for s in times:
            x[int(s * sr):int(s * sr) + 200] += np.hanning(200).astype(np.float32)
        return x

    steady = beat_measures(clicks(np.arange(0.05, 3.9, 0.5)), sr, "medium")  # 120 BPM
    loose = beat_measures(clicks(np.sort(np.random.default_rng(0).uniform(0.05, 3.9, 8))), sr, "medium")
    assert steady["ioi_cv"] < 0.05 and loose["ioi_cv"] > 0.3
    assert steady["periodicity"] > 0.5 > loose["periodicity"]
    assert steady["class_hit"] == 1.0 and abs(steady["librosa_tempo"] - 120) < 6


def test_bpm_sweep_renders_a_beat_model_at_each_tempo(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    pytest.importorskip("librosa", reason="librosa comes with the eval extra")
    import numpy as np
    import torch

    from steerbridge.engine.demo.beat import with_beat
    from steerbridge.engine.demo.model import CONFIG_PATH, build_model

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _bpm_sweep import BPMS, bpm_sweep

    from steerbridge.engine.demo import follow

    torch.manual_seed(0)
    model = build_model(with_beat(json.loads(CONFIG_PATH.read_text()))).eval()  # untrained: the plumbing
    rendered = []
    real = follow.render_audio

    def spy(*args, **kwargs):
        rendered.append(audio := real(*args, **kwargs))
        return audio

    monkeypatch.setattr(follow, "render_audio", spy)
    out = bpm_sweep(model, prompts=["keys track"], seed=1, steps=1, cfg_scale=1.0)
    row = out["prompts"]["keys track"]
    assert out["bpms"] == list(BPMS) and len(row["librosa_tempo"]) == len(row["onset_rate"]) == 7
    (audio,) = rendered
    assert not np.allclose(audio[0], audio[-1])  # the same prompt and seed: the tempo input made the difference
    assert 0.0 <= out["exact_bpm"] <= 1.0 and math.isfinite(out["shift_onset"])


def test_tonal_clarity_gives_the_demo_model_its_beat() -> None:
    """The tonal part renders a beat model as it is played: each caption at its corpus clip's BPM and phase.
    (FluidSynth is only needed for the corpus side, which corpus=False skips.)"""
    import sys

    import numpy as np

    from steerbridge import engine

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _tonal import held_out_renders

    model = engine.load_model("demo").model
    assert "beat" in model.conditioner.conditioners
    kw = dict(clips=2, steps=1, cfg_scale=1.0, corpus=False)
    prompts, _, plain, _, _ = held_out_renders(model, **kw)
    prompts_beat, _, with_beat, _, _ = held_out_renders(model, beat=True, **kw)
    assert prompts == prompts_beat  # the same captions and seeds: only the beat differs
    assert np.abs(plain - with_beat).max() > 1e-3
