"""Beat conditioning (engine/demo/beat.py): the features, the conditioner, the model that takes them,
and the training clips' beat grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from steerbridge.engine.demo import score
from steerbridge.engine.demo.beat import BEAT_CHANNELS, beat_features, with_beat
from steerbridge.engine.demo.corpus import CorpusOptions, _draw, beat_grid
from steerbridge.engine.demo.model import CONFIG_PATH, build_model, export_model, load_model_folder
from steerbridge.engine.demo.train import _beat_values, init_weights_from

RATE = 22050 / 256


def test_features_peak_on_the_beats_and_alternate_every_two() -> None:
    f = beat_features(120.0, 400, frame_rate=RATE)
    assert f.shape == (BEAT_CHANNELS, 400)
    beat_frames = np.round(np.arange(0, 4.0, 0.5) * RATE).astype(int)
    assert np.all(f[1, beat_frames] > 0.99)  # cos of the beat phase: 1 on every beat
    half = np.round((np.arange(0, 4.0, 0.5) + 0.25) * RATE).astype(int)
    assert np.all(f[1, half] < -0.99)  # -1 half-way between
    assert np.all(f[3, beat_frames[::2]] > 0.99) and np.all(f[3, beat_frames[1::2]] < -0.99)  # two-beat cycle
    shifted = beat_features(120.0, 400, frame_rate=RATE, phase=0.5)
    assert shifted[1, 0] == pytest.approx(-1.0)


@pytest.fixture(scope="module")
def beat_config() -> dict:
    return with_beat(json.loads(CONFIG_PATH.read_text()))


@pytest.fixture(scope="module")
def beat_model(beat_config: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(beat_config).eval()


def test_conditioner_reads_numbers_and_dicts_and_takes_anything_else_as_no_beat(beat_model) -> None:
    cond = beat_model.conditioner.conditioners["beat"]
    x, mask = cond([120.0, {"bpm": 90.0, "phase": 0.25}, "a prompt", None], "cpu")
    assert x.shape == (4, BEAT_CHANNELS, cond.frames(4.0)) and mask.all()
    assert torch.equal(x[0], torch.from_numpy(beat_features(120.0, x.shape[-1], frame_rate=RATE)))
    assert x[1, 1, 0] == pytest.approx(0.0, abs=1e-6)  # a quarter beat in: cos = 0
    assert not x[2].any() and not x[3].any()
    x, _ = cond([{"bpm": 100.0, "seconds": 2.0}], "cpu")
    assert x.shape[-1] == cond.frames(2.0) and cond.frames(2.0) % 2 == 0
    with pytest.raises(ValueError, match="outside 20..400"):
        cond([5.0], "cpu")
    with pytest.raises(ValueError, match="expected the keys bpm"):
        cond([{"bpm": 100.0, "tempo": 3}], "cpu")
    with pytest.raises(ValueError, match=r"got \['seconds'\]"):
        cond([{"seconds": 2.0}], "cpu")
    with pytest.raises(TypeError, match="BPM number"):
        cond([[1, 2]], "cpu")


def test_a_beat_model_loads_strictly_and_renders_with_and_without_a_beat(beat_model, beat_config, tmp_path) -> None:
    export_model(beat_model, tmp_path, beat_config)
    model = load_model_folder(tmp_path)  # the ordinary factory path: the conditioner type loads by name
    assert model.model.model.input_concat_dim == BEAT_CHANNELS
    x = torch.randn(2, model.io_channels, 64)
    t = torch.full((2,), 0.5)
    plain = model(x, t, cond=model.conditioner([{"prompt": "piano loop"}] * 2, "cpu"))
    beat = model(x, t, cond=model.conditioner([{"prompt": "piano loop", "beat": 120.0}] * 2, "cpu"))
    assert plain.shape == beat.shape == x.shape and not torch.allclose(plain, beat)


def test_init_from_grows_the_input_projections_so_the_grown_model_starts_as_the_old(beat_config, tmp_path) -> None:
    torch.manual_seed(1)
    old = build_model().eval()
    export_model(old, tmp_path)
    grown = build_model(beat_config).eval()
    line = init_weights_from(grown, tmp_path)
    assert "2 grown" in line and "project_in" in line
    old = load_model_folder(tmp_path)  # the fp16 round trip both now share
    x, t = torch.randn(1, old.io_channels, 64), torch.full((1,), 0.7)
    meta = [{"prompt": "slow dark piano", "beat": 80.0}]
    with torch.no_grad():
        before = old(x, t, cond=old.conditioner([{"prompt": "slow dark piano"}], "cpu"))
        after = grown(x, t, cond=grown.conditioner(meta, "cpu"))
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("swing", [False, True])
def test_beat_grid_is_where_the_scores_bass_plays(swing: bool) -> None:
    options = CorpusOptions(synth="fluidsynth", sample_rate=22050, slow_swing=swing)
    for seed in range(12):
        rng, attrs, bpm, key = _draw(seed, options, None)
        notes = score.compose(attrs, bpm=bpm, key=key, rng=rng, seconds=4.0, swing=swing).notes
        bass = np.array(sorted(n.start for n in notes if n.channel == 1))  # the bass states every beat
        got_bpm, first = beat_grid(seed, options=options)
        assert got_bpm == bpm
        np.testing.assert_allclose(bass, first + np.arange(len(bass)) * 60.0 / bpm, atol=1e-9)


def test_training_windows_get_the_phase_of_their_first_frame() -> None:
    hop_s = 256 / 22050
    grids = [(120.0, 0.1), (75.0, 0.05)]
    values = _beat_values(grids, np.array([0, 1]), np.array([0, 100]), 172, hop_s, np.random.default_rng(0), 0.0)
    assert values[0]["phase"] == pytest.approx(-0.1 * 2.0)  # the first beat is 0.1 s in
    assert values[1]["phase"] == pytest.approx((100 * hop_s - 0.05) * 75.0 / 60.0)
    assert values[1]["seconds"] == pytest.approx(172 * hop_s)
    dropped = _beat_values(grids * 50, np.arange(100), np.zeros(100, int), 172, hop_s, np.random.default_rng(0), 0.3)
    assert 15 <= sum(v is None for v in dropped) <= 45


def test_distillation_beats_fit_the_caption_tempo_and_the_trajectory_length() -> None:
    from steerbridge.engine.demo.captions import Attributes
    from steerbridge.engine.demo.distill import beat_value

    rng = np.random.default_rng(0)
    attrs = Attributes(instrument="piano", tempo="fast", mode="major", brightness="bright", drums="drums",
                       density="busy")
    values = [beat_value(attrs, rng, 0.2, 2.0) for _ in range(200)]
    beats = [v for v in values if v is not None]
    assert 20 <= 200 - len(beats) <= 60
    lo, hi = score.TEMPO_BPM_V2["fast"]
    assert all(lo <= v["bpm"] <= hi and v["seconds"] == 2.0 for v in beats)


@pytest.mark.slow
def test_a_beat_teacher_distils_into_a_beat_student_grown_from_an_earlier_one(beat_model, beat_config,
                                                                             tmp_path) -> None:
    from steerbridge.engine.demo.distill import DistillConfig, distill

    export_model(beat_model, tmp_path / "teacher", beat_config)
    plain = json.loads(CONFIG_PATH.read_text())  # an earlier student without the beat input
    torch.manual_seed(1)
    export_model(build_model(plain).eval(), tmp_path / "earlier", plain)
    cfg = DistillConfig(teacher=str(tmp_path / "teacher"), steps=1, batch=2, frames=8, warmup=1,
                        init_from=str(tmp_path / "earlier"))
    distill(tmp_path / "out", cfg=cfg, minutes=None, resume=False, threads=1, checkpoint_minutes=60.0,
            eval_minutes=60.0, eval_pairs=0)
    assert "2 grown" in (tmp_path / "out" / "distill.log").read_text()
    student = load_model_folder(tmp_path / "out" / "export")
    assert student.model.model.input_concat_dim == BEAT_CHANNELS
    earlier = load_model_folder(tmp_path / "earlier").state_dict()
    key = "model.model.transformer.layers.0.cross_attn.to_q.weight"  # the earlier student's, one small step on
    assert (student.state_dict()[key] - earlier[key]).abs().max() < 0.05
    assert not torch.equal(student.state_dict()[key], beat_model.state_dict()[key])


def test_the_engine_gives_a_renders_bpm_to_a_beat_model_and_no_other(beat_model, beat_config, tmp_path) -> None:
    import dataclasses

    from steerbridge.engine.runtime.errors import EngineError
    from steerbridge.engine.runtime.render import RenderRequest, load_model

    export_model(beat_model, tmp_path, beat_config)
    engine = load_model(tmp_path)  # a model folder, through the engine's normal path
    assert engine.adapter.takes_bpm
    request = RenderRequest(prompt="piano loop", seed=3, seconds=1.0, steps=2, cfg_scale=1.0)
    plain, at_90, at_140 = (engine.render(dataclasses.replace(request, bpm=b)).audio for b in (None, 90.0, 140.0))
    assert not np.allclose(plain, at_90) and not np.allclose(at_90, at_140)
    assert np.array_equal(at_90, engine.render(dataclasses.replace(request, bpm=90.0)).audio)
    demo = load_model("demo")  # the shipped demo model has the input too; tiny (no input) ignores a tempo
    assert demo.adapter.takes_bpm
    assert not np.allclose(demo.render(request).audio, demo.render(dataclasses.replace(request, bpm=90.0)).audio)
    tiny = load_model("tiny")
    assert not tiny.adapter.takes_bpm
    assert np.array_equal(tiny.render(request).audio, tiny.render(dataclasses.replace(request, bpm=90.0)).audio)
    with pytest.raises(EngineError, match="bpm must be in 20..400"):
        RenderRequest(prompt="piano loop", bpm=10.0)


def test_caa_records_a_beat_model_at_the_asked_tempo_and_ignores_it_elsewhere() -> None:
    from steerbridge.engine.extraction.caa import extract_caa
    from steerbridge.engine.runtime.render import load_model

    kw = dict(positive=["happy piano loop"], negative=["sad piano loop"], concept="mood", layers=[1], seconds=1.0,
              steps=2, cfg_scale=1.0)
    engine = load_model("demo")  # trained with the beat input (a fresh grown model starts deaf to it)
    plain, at_90, again = (extract_caa(engine, bpm=b, **kw) for b in (None, 90.0, 90.0))
    assert not torch.allclose(plain.tensors[1], at_90.tensors[1])  # the beat changes what the site sees
    assert torch.equal(at_90.tensors[1], again.tensors[1]) and at_90.meta.extra["bpm"] == 90.0
    assert "bpm" not in plain.meta.extra
    tiny = load_model("tiny")  # no beat input: the tempo is ignored
    assert torch.equal(extract_caa(tiny, **kw).tensors[1], extract_caa(tiny, bpm=90.0, **kw).tensors[1])
