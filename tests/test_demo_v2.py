"""The second-generation demo model's parts: scores, FluidSynth corpus, mel, HiFi-GAN, evaluators."""

from __future__ import annotations

import importlib.metadata
import shutil

import numpy as np
import pytest
import torch

from steerbridge.engine.demo.captions import Attributes
from steerbridge.engine.demo.codec import MelCodec, slaney_mel_filterbank
from steerbridge.engine.demo.score import PROGRAMS, compose

SR = 22050
BASE = Attributes(mode="major", tempo="medium", brightness="bright", instrument="piano", drums="drums",
                  density="sparse")


def _chords(mode: str, seconds: float = 4.0, sr: int = SR) -> np.ndarray:
    """Sine-partial triads (I, IV, V, I in C) for evaluator tests, no SoundFont needed."""
    third = 4 if mode == "major" else 3
    t = np.arange(int(seconds * sr)) / sr
    out = np.zeros_like(t)
    seg = len(t) // 4
    for k, root in enumerate((60, 65, 67, 60)):
        for m in (root, root + third, root + 7):
            f = 440 * 2 ** ((m - 69) / 12)
            tone = sum(np.sin(2 * np.pi * f * h * t[:seg]) / h for h in (1, 2, 3))
            out[k * seg:(k + 1) * seg] += tone * np.exp(-t[:seg] * 1.5)
    return (0.1 * out / np.abs(out).max()).astype(np.float32)


def test_scores_sustain_the_third_that_makes_the_mode():
    for mode, third in (("major", 4), ("minor", 3)):
        score = compose(BASE.replace(mode=mode), bpm=110, key=0, rng=np.random.default_rng(3))
        lead = [n for n in score.notes if n.channel == 0]
        starts = sorted({n.start for n in lead})
        chord = [n.pitch for n in lead if n.start == starts[0]]
        # The first chord is the tonic triad and the melody holds its third an octave up.
        assert sorted(p % 12 for p in chord if p < 72) == sorted({0, third, 7})
        assert any(n.pitch % 12 == third and n.duration > 0.5 for n in lead)
        assert score.program == PROGRAMS["piano"]


def test_scores_always_state_the_beat():
    bpm = 80.0
    for drums, channel in (("drums", 9), ("nodrums", 1)):
        score = compose(BASE.replace(drums=drums), bpm=bpm, key=2, rng=np.random.default_rng(5))
        onsets = sorted({round(n.start, 4) for n in score.notes if n.channel == channel
                         and (channel != 9 or n.pitch == 36)})
        assert np.allclose(np.diff(onsets), 60 / bpm, atol=1e-3)  # kick (or bass) on every beat
        assert len(onsets) >= int(4.0 * bpm / 60)


def test_swing_shuffles_only_the_slow_off_beats():
    slow = BASE.replace(tempo="slow", density="busy")
    bpm = 72.0
    straight = compose(slow, bpm=bpm, key=0, rng=np.random.default_rng(8))
    swung = compose(slow, bpm=bpm, key=0, rng=np.random.default_rng(8), swing=True)
    beat, first = 60 / bpm, straight.notes[0].start
    phase = lambda n: ((n.start - first) / beat) % 1.0  # noqa: E731
    assert len(straight.notes) == len(swung.notes)
    moved = [(a, b) for a, b in zip(straight.notes, swung.notes) if a != b]
    assert moved and all(abs(phase(a) - 0.5) < 1e-6 and abs(phase(b) - 2 / 3) < 1e-6 for a, b in moved)
    assert {n.channel for _, n in moved} == {0, 9}  # the passing tones and the off-beat hats
    for tempo in ("medium", "fast"):  # the other classes keep straight eighths
        attrs = slow.replace(tempo=tempo)
        assert compose(attrs, bpm=120, key=0, rng=np.random.default_rng(8), swing=True) == \
            compose(attrs, bpm=120, key=0, rng=np.random.default_rng(8))


@pytest.mark.skipif(shutil.which("fluidsynth") is None,
                    reason="training-time dependency: apt-get install fluidsynth fluid-soundfont-gm")
def test_swung_slow_clips_are_not_heard_at_double_tempo():
    pytest.importorskip("librosa", reason="librosa comes with the eval extra")
    from steerbridge.engine.demo.corpus import CorpusOptions, make_clips
    from steerbridge.engine.evaluation.rhythm import librosa_tempo

    seeds = list(range(900_200, 900_216))
    attrs = [BASE.replace(tempo="slow", density="busy", drums=("drums", "nodrums")[i % 2]) for i in range(16)]
    right = {}
    for swing in (False, True):
        clips = make_clips(seeds, options=CorpusOptions(synth="fluidsynth", sample_rate=SR, slow_swing=swing),
                           attrs=attrs)
        right[swing] = np.mean([abs(librosa_tempo(c.audio, SR) - c.bpm) / c.bpm < 0.08 for c in clips])
    assert right[True] >= 0.8 and right[True] > right[False]


def test_slaney_filterbank_is_librosas():
    librosa = pytest.importorskip("librosa", reason="librosa comes with the eval extra: pip install -e '.[eval]'")
    ours = slaney_mel_filterbank(sample_rate=SR, n_fft=1024, n_bands=80, f_min=0, f_max=8000)
    theirs = torch.from_numpy(librosa.filters.mel(sr=SR, n_fft=1024, n_mels=80, fmin=0, fmax=8000))
    assert torch.allclose(ours, theirs.float(), atol=1e-7)


def _codec(decoder: str) -> MelCodec:
    codec = MelCodec(sample_rate=SR, n_bands=80, n_fft=1024, hop=256, f_min=0.0, f_max=8000.0, floor=1e-5,
                     scale="slaney", decoder=decoder)
    codec.fit(torch.from_numpy(_chords("major"))[None, None, :88064])
    return codec


def _peak_hz(audio: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spec) * SR / len(audio))


@pytest.mark.parametrize("decoder", ["griffin-lim", "hifigan"])
def test_decoders_give_back_the_pitch(decoder):
    t = np.arange(88064) / SR  # a harmonic tone (pure sines are outside HiFi-GAN's training data)
    tone = (0.1 * sum(np.sin(2 * np.pi * 440 * h * t) / h for h in (1, 2, 3, 4))).astype(np.float32)
    codec = _codec(decoder)
    out = codec.decode(codec.encode(torch.from_numpy(tone)[None, None]))[0, 0].numpy()
    assert out.shape == tone.shape and np.isfinite(out).all()
    assert abs(_peak_hz(out[4096:-4096]) - 440) < 440 * (2 ** (1 / 24) - 1)  # a quarter tone


def test_hifigan_comes_from_the_pinned_wheel_offline():
    from steerbridge.engine.demo.hifigan import HIFIGAN_REQUIREMENT, hifigan_dir, load_generator

    name, version = HIFIGAN_REQUIREMENT.split("==")
    assert importlib.metadata.version(name) == version
    assert (hifigan_dir() / "data" / "generator_universal.pth.tar").is_file()
    gen = load_generator()
    assert not any(p.requires_grad for p in gen.parameters())
    import sys
    assert "torchaudio" not in sys.modules  # the package __init__ (which imports it) never ran


def test_hifigan_refuses_a_codec_it_was_not_trained_for():
    codec = MelCodec(sample_rate=16000, decoder="hifigan")  # the first demo model's warped mel
    with pytest.raises(ValueError, match="griffin-lim"):
        codec.decode(torch.zeros(1, 96, 8))


def test_basic_pitch_hears_major_and_minor():
    tr = pytest.importorskip("steerbridge.engine.evaluation.transcription")
    if not tr.available():
        pytest.skip("basic-pitch not installed (make install installs it)")
    major, minor = _chords("major"), _chords("minor")
    assert tr.transcribed_mode(major, SR) > 0.05 > -0.05 > tr.transcribed_mode(minor, SR)
    assert tr.note_count(major, SR) >= 8  # four triads: at least most of their 12 notes


def test_librosa_tempo_of_a_click_track():
    rhythm = pytest.importorskip("steerbridge.engine.evaluation.rhythm")
    pytest.importorskip("librosa", reason="librosa comes with the eval extra")
    for bpm in (90.0, 150.0):
        x = np.zeros(int(6 * SR), dtype=np.float32)
        for b in np.arange(0, 6, 60 / bpm):
            i = int(b * SR)
            x[i:i + 200] += np.hanning(200).astype(np.float32)
        assert abs(rhythm.librosa_tempo(x, SR) - bpm) / bpm < 0.05


@pytest.mark.skipif(shutil.which("fluidsynth") is None,
                    reason="training-time dependency: apt-get install fluidsynth fluid-soundfont-gm")
def test_fluidsynth_corpus_tempo_and_mode_are_measurable():
    pytest.importorskip("librosa", reason="librosa comes with the eval extra")
    from steerbridge.engine.demo.corpus import CorpusOptions, make_clips
    from steerbridge.engine.evaluation.descriptors import mode_score
    from steerbridge.engine.evaluation.rhythm import librosa_tempo

    options = CorpusOptions(synth="fluidsynth", sample_rate=SR)
    clips = make_clips(list(range(900_100, 900_116)), options=options)
    assert all(len(c.audio) == 4 * SR and np.isfinite(c.audio).all() for c in clips)
    tempo_ok = [abs(librosa_tempo(c.audio, SR) - c.bpm) / c.bpm < 0.08 for c in clips]
    assert np.mean(tempo_ok) >= 0.75
    modes = [(mode_score(c.audio, SR), c.attrs.mode) for c in clips]
    assert np.mean([(m > 0) == (mode == "major") for m, mode in modes]) >= 0.75


def test_a_render_request_picks_the_decoder():
    from steerbridge.engine import RenderRequest, load_model
    from steerbridge.engine.runtime.errors import EngineError

    model = load_model("demo")
    codec = model.model.pretransform
    base = RenderRequest(prompt="piano loop", seed=3, seconds=1.0, steps=2)
    gl = model.render(base).audio
    assert np.array_equal(model.render(RenderRequest(**{**base.render_settings(), "decoder": "griffin-lim"})).audio, gl)
    assert base.cache_key() != RenderRequest(**{**base.render_settings(), "decoder": "hifigan"}).cache_key()
    assert codec.decoder == "griffin-lim"  # a request never changes the model's default
    with pytest.raises(EngineError, match="not one of"):
        model.render(RenderRequest(**{**base.render_settings(), "decoder": "wavenet"}))
    tiny = load_model("tiny")
    with pytest.raises(EngineError, match="one fixed decoder"):
        tiny.render(RenderRequest(prompt="x", seconds=0.5, steps=2, decoder="hifigan"))
