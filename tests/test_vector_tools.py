"""tools/make_vectors.py --every-layer and --bpm (on the demo model: it has a beat input), and
tools/choose_steering.py's candidates (One-to-All and norm-relative ones too) and rule, on the tiny model."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import choose_steering  # noqa: E402
import make_vectors  # noqa: E402


def test_every_layer_writes_the_whole_file_and_records_the_chosen_layers(tmp_path: Path) -> None:
    from steerbridge import engine

    args = ["--source", "tiny", "--out", str(tmp_path), "--layers", "1", "--seconds", "0.5", "--steps", "2"]
    assert make_vectors.main([*args, "--concept", "tempo", "--concept", "mood", "--every-layer", "tempo"]) == 0
    record = json.loads((tmp_path / "layers.json").read_text())
    model = engine.load_model("tiny")
    tempo = engine.load_vector(tmp_path / "tempo.safetensors", model=model)
    mood = engine.load_vector(tmp_path / "mood.safetensors", model=model)
    assert list(tempo.layers) == list(range(model.num_layers)) == record["concepts"]["tempo"]["file_layers"]
    assert record["concepts"]["tempo"]["layers"] == [1]  # where its knob steers
    assert list(mood.layers) == [1] == record["concepts"]["mood"]["file_layers"]
    with pytest.raises(SystemExit):  # a concept not made here cannot be written at every layer
        make_vectors.main([*args, "--concept", "mood", "--every-layer", "tempo"])


def test_bpm_records_the_demo_model_at_that_tempo(tmp_path: Path) -> None:
    import torch

    from steerbridge import engine

    args = ["--source", "demo", "--layers", "2", "--seconds", "0.5", "--steps", "1", "--concept", "tempo"]
    assert make_vectors.main([*args, "--out", str(tmp_path / "beat"), "--bpm", "150"]) == 0
    assert make_vectors.main([*args, "--out", str(tmp_path / "plain")]) == 0
    beat = engine.load_vector(tmp_path / "beat" / "tempo.safetensors")
    plain = engine.load_vector(tmp_path / "plain" / "tempo.safetensors")
    assert beat.meta.extra["bpm"] == 150 and "bpm" not in plain.meta.extra
    assert json.loads((tmp_path / "beat" / "layers.json").read_text())["bpm"] == 150
    assert not torch.allclose(beat.tensor(2), plain.tensor(2))  # the beat input reached the recording


def test_candidates_stay_inside_the_model_and_are_unique() -> None:
    labels = [choose_steering.label(c) for c in choose_steering.candidates([0, 1], 8)]
    assert labels == ["cross_attn@0,1", "cross_attn@0,1 per-step", "cross_attn@1,2",
                      "cross_attn@0,1,2,3,4,5,6,7", "cross_attn@0 to every layer", "cross_attn@1 to every layer",
                      "cross_attn@0,1 norm-relative", "block@0,1"]
    every = [choose_steering.label(c) for c in choose_steering.candidates([0, 1], 2, steps=4)]
    assert every == ["cross_attn@0,1", "cross_attn@0,1 per-step", "cross_attn@0,1 per-step first 2 steps",
                     "cross_attn@0 to every layer", "cross_attn@1 to every layer", "cross_attn@0,1 norm-relative",
                     "cross_attn@0,1 per-step first 2 steps norm-relative", "block@0,1",
                     "block@0,1 per-step first 2 steps"]
    early = [choose_steering.label(c) for c in choose_steering.candidates([0, 1], 2, steps=4, first_steps=[1, 3, 4])]
    assert early == ["cross_attn@0,1", "cross_attn@0,1 per-step", "cross_attn@0,1 per-step first 1 steps",
                     "cross_attn@0,1 per-step first 3 steps", "cross_attn@0 to every layer",
                     "cross_attn@1 to every layer", "cross_attn@0,1 norm-relative",
                     "cross_attn@0,1 per-step first 1 steps norm-relative",
                     "cross_attn@0,1 per-step first 3 steps norm-relative", "block@0,1",
                     "block@0,1 per-step first 1 steps",
                     "block@0,1 per-step first 3 steps"]  # 4 of 4 steps is the plain per-step candidate
    spread = next(c for c in choose_steering.candidates([2, 3], 8) if "one_to_all" in c)
    assert spread == {"site": "cross_attn", "layers": list(range(8)), "per_step": False, "one_to_all": 2}


def test_norm_relative_vector_is_the_engines_norm_units_in_one_file() -> None:
    """Each layer's (step's) direction at its activations' norm, rescaled as a whole to the CAA vector's mean
    length: steering with it is steering with alpha_units = "norm" at alpha * norm_scale."""
    import torch

    from steerbridge.engine.runtime.steering import Steering, SteeringTerm, site_offsets
    from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta

    meta = VectorMeta(concept="drums", site="cross_attn", method="caa", fingerprint="x", extra={"per_step": True},
                      site_norms={3: 2.0, 5: 8.0})
    v = ConceptVector({3: torch.tensor([[3.0, 4.0], [0.0, 0.0]]), 5: torch.tensor([[0.0, 1.0], [0.0, 0.0]])}, meta)
    n = choose_steering.norm_relative(v)
    lengths = {l: n.tensor(l).norm(dim=-1) for l in (3, 5)}
    assert torch.allclose(lengths[5][0] / lengths[3][0], torch.tensor(4.0))  # 8 : 2, as the activations
    assert lengths[3][1] == 0 and lengths[5][1] == 0  # a step it does not steer stays unsteered
    assert torch.allclose((lengths[3][0] + lengths[5][0]) / 2, torch.tensor(3.0))  # mean of 5 and 1
    scale = n.meta.extra["norm_scale"]
    assert n.meta.extra["norm_relative"] is True and math.isclose(scale, 6.0 / 10.0)

    def offsets(vec, alpha, units):
        return site_offsets(Steering((SteeringTerm(vec, alpha),), alpha_units=units), site="cross_attn",
                            num_layers=6, dim=2)

    baked, engine_norm = offsets(n, 1.5, "absolute"), offsets(v, 1.5 * scale, "norm")
    assert all(torch.allclose(baked[l], engine_norm[l], atol=1e-6) for l in (3, 5))
    with pytest.raises(ValueError, match="zero everywhere"):
        choose_steering.norm_relative(v * 0.0)
    with pytest.raises(ValueError, match="activation norm"):
        choose_steering.norm_relative(ConceptVector({1: torch.ones(2)}, VectorMeta(
            concept="drums", site="cross_attn", method="caa", fingerprint="x")))


def test_a_one_to_all_candidate_is_a_preset_the_bridge_loads(tmp_path: Path) -> None:
    from steerbridge import engine
    from steerbridge.bridge.presets.model import load_preset

    model = engine.load_model("tiny")
    path = tmp_path / "v.safetensors"
    make_vectors.main(["--source", "tiny", "--out", str(tmp_path), "--layers", "1", "--seconds", "0.5",
                       "--steps", "2", "--concept", "tempo"])
    cand = next(c for c in choose_steering.candidates([1], model.num_layers) if "one_to_all" in c)
    assert cand["one_to_all"] == 1
    (tmp_path / "tempo.safetensors").rename(path)
    (tmp_path / "p.toml").write_text(choose_steering.preset_text("tiny", model, path, "tempo", None, cand))
    knob = load_preset(tmp_path / "p.toml").knobs[0]
    assert knob.one_to_all == 1 and list(knob.layers) == list(range(model.num_layers))


def test_early_only_vector_steers_the_first_steps_and_nothing_after() -> None:
    import torch

    from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta

    meta = VectorMeta(concept="tempo", site="cross_attn", method="caa", fingerprint="x", extra={"per_step": True})
    v = ConceptVector({2: torch.ones(4, 3), 3: torch.full((4, 3), 2.0)}, meta)
    early = choose_steering.early_only(v, 2)
    assert torch.equal(early.tensor(2)[:2], v.tensor(2)[:2]) and early.tensor(3)[2:].abs().sum() == 0
    assert early.meta.extra == {"per_step": True, "first_steps": 2} and choose_steering.early_only(v, None) is v


def _result(lo, shift):
    return {"label": f"{lo}/{shift}", "second_rho": {},
            "recommended": {"alpha_min": lo, "alpha_max": None if lo is None else 1.0, "shift_units": shift}}


def test_without_a_second_opinion_the_widest_valid_shift_wins() -> None:
    wide, narrow, invalid = _result(-1.0, 5.0), _result(-1.0, 2.0), _result(None, math.nan)
    assert choose_steering.best([narrow, wide, invalid]) is wide
    assert choose_steering.best([invalid]) is None


def test_with_a_second_opinion_the_range_both_descriptors_follow_wins() -> None:
    """Two descriptors (mood: mode score and basic-pitch): the range is the one whose lower rho is highest."""
    grid = [-2.0, -1.0, 0.0, 1.0, 2.0]
    rising = [[0.0, 1.0, 2.0, 3.0, 4.0]] * 2
    scores = {"grid": grid, "descriptors": rising, "distance_over_swap": [[0.5, 0.3, 0.0, 0.3, 0.5]] * 2,
              "second_opinions": {"transcribed_mode": [[0.0, 1.0, 2.0, 1.0, 0.0]] * 2}}  # follows only below 0
    pick = choose_steering.agreed_range(scores, scale=1.0)
    assert (pick["alpha_min"], pick["alpha_max"]) == (-2.0, 0.0) and pick["lower_rho"] == 1.0
    scores["distance_over_swap"] = [[2.0, 2.0, 0.0, 0.3, 0.5]] * 2  # the left side leaves the distance
    pick = choose_steering.agreed_range(scores, scale=1.0)
    assert pick["alpha_min"] == 0.0 and pick["lower_rho"] < 0  # the best left is an honest disagreement
    a = {"label": "a", "recommended": {"alpha_min": 0.0, "shift_units": 5.0, "lower_rho": 0.3}, "second_rho": {}}
    b = {"label": "b", "recommended": {"alpha_min": 0.0, "shift_units": 1.0, "lower_rho": 0.8}, "second_rho": {}}
    assert choose_steering.best([a, b]) is b
    c = {"label": "c", "recommended": {"alpha_min": 0.0, "shift_units": 3.0, "lower_rho": 0.77}, "second_rho": {}}
    assert choose_steering.best([a, b, c]) is c  # as good within the tie (0.05), and three times the shift


def test_every_candidate_range_is_chosen_against_one_floor() -> None:
    """A candidate whose own tie-widened range falls below the floor set by the best candidate competes with
    the best range it has above that floor, not with none."""
    from steerbridge.engine.evaluation.concepts import get_concept

    grid, up = [-1.0, 0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0, 4.0]

    def candidate(label, second):
        scores = {"grid": grid, "descriptors": [up] * len(second), "distance_over_swap": [[0.3, 0, 0.3, 0.4, 0.5]]
                  * len(second), "second_opinions": {"transcribed_mode": second}}
        return {"label": label, **choose_steering.judge(scores, get_concept("mood"))}

    narrow = candidate("narrow", [[0, 1, 2, 1, 0]] * 6)  # both descriptors agree over -1 .. 1 only
    wide = candidate("wide", [[2, 1, 0, 3, 4]] + [up] * 5)  # agree at 0.97 over 0 .. 3, at 0.93 over -1 .. 3
    assert narrow["recommended"]["lower_rho"] == 1.0 and narrow["recommended"]["alpha_max"] == 1.0
    assert wide["recommended"]["alpha_max"] == 3.0 and wide["recommended"]["lower_rho"] < 0.95  # its own tie
    win = choose_steering.best([narrow, wide], get_concept("mood"))
    assert win["label"] == "wide"  # re-chosen against 1.0 - 0.05: three grid steps beat the narrow one's two
    assert (win["recommended"]["alpha_min"], win["recommended"]["alpha_max"]) == (0.0, 3.0)
    assert win["recommended"]["lower_rho"] >= 0.95
