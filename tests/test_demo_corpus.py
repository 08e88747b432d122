"""The procedural corpus: deterministic, labelled, captions that name what plays."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from steerbridge.engine.demo.captions import ATTRIBUTES, HELD_OUT, SYNONYMS, Attributes, caption, is_held_out
from steerbridge.engine.demo.corpus import SAMPLE_RATE, TEMPO_BPM, CorpusOptions, make_clip, sample_attributes


def _digest(audio: np.ndarray) -> str:
    return hashlib.sha256(audio.tobytes()).hexdigest()


def test_same_seed_same_clip_bit_for_bit() -> None:
    a, b = make_clip(123), make_clip(123)
    assert _digest(a.audio) == _digest(b.audio)
    assert (a.attrs, a.bpm, a.key, a.caption) == (b.attrs, b.bpm, b.key, b.caption)
    assert _digest(make_clip(124).audio) != _digest(a.audio)


def test_clip_shape_level_and_labels() -> None:
    clip = make_clip(7)
    assert clip.audio.dtype == np.float32
    assert clip.audio.shape == (4 * SAMPLE_RATE,)
    rms = float(np.sqrt(np.mean(clip.audio**2)))
    assert 0.08 < rms < 0.11  # normalised to -20 dBFS before the soft limiter
    assert np.abs(clip.audio).max() < 1.0
    lo, hi = TEMPO_BPM[clip.attrs.tempo]
    assert lo <= clip.bpm <= hi


def test_forcing_attributes_keeps_key_and_pattern() -> None:
    base = make_clip(55)
    other = "dark" if base.attrs.brightness == "bright" else "bright"
    forced = make_clip(55, attrs=base.attrs.replace(brightness=other))
    assert forced.key == base.key and forced.bpm == base.bpm
    assert forced.attrs.brightness == other
    assert _digest(forced.audio) != _digest(base.audio)


def test_held_out_combinations_never_drawn_for_training() -> None:
    rng = np.random.default_rng(0)
    drawn = [sample_attributes(rng, options=CorpusOptions()) for _ in range(3000)]
    assert not any(is_held_out(a) for a in drawn)
    rng = np.random.default_rng(0)
    with_held = [sample_attributes(rng, options=CorpusOptions(include_held_out=True)) for _ in range(3000)]
    seen = {(a.instrument, a.tempo, a.mode) for a in with_held}
    assert HELD_OUT <= seen


@pytest.mark.parametrize("coupling, p_fast_major, p_fast_minor", [(0.0, 1 / 3, 1 / 3), (0.4, 0.6, 0.2),
                                                                   (1.0, 1.0, 0.0)])
def test_mood_tempo_coupling(coupling: float, p_fast_major: float, p_fast_minor: float) -> None:
    rng = np.random.default_rng(1)
    opts = CorpusOptions(mood_tempo_coupling=coupling, include_held_out=True)
    drawn = [sample_attributes(rng, options=opts) for _ in range(6000)]
    for mode, expected in (("major", p_fast_major), ("minor", p_fast_minor)):
        tempi = Counter(a.tempo for a in drawn if a.mode == mode)
        assert tempi["fast"] / sum(tempi.values()) == pytest.approx(expected, abs=0.03)


def test_coupling_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="mood_tempo_coupling"):
        CorpusOptions(mood_tempo_coupling=1.5)


def test_caption_names_mentioned_attributes_with_their_synonyms() -> None:
    attrs = Attributes(mode="minor", tempo="fast", brightness="dark", instrument="bell",
                       drums="drums", density="busy")
    everything = {a: True for a in ATTRIBUTES}
    for seed in range(20):
        text = caption(attrs, rng=np.random.default_rng(seed), mention=everything)
        for attribute in ATTRIBUTES:
            words = SYNONYMS[(attribute, getattr(attrs, attribute))]
            assert any(w in text for w in words), (attribute, text)
    bare = caption(attrs, rng=np.random.default_rng(0), mention={"instrument": True})
    assert len(bare.split()) <= 3  # e.g. "chimes loop"


def test_same_caption_rng_gives_one_word_pairs() -> None:
    attrs = Attributes(mode="major", tempo="slow", brightness="dark", instrument="piano",
                       drums="nodrums", density="sparse")
    mention = {a: True for a in ATTRIBUTES}
    a = caption(attrs, rng=np.random.default_rng(9), mention=mention)
    b = caption(attrs.replace(tempo="fast"), rng=np.random.default_rng(9), mention=mention)
    diff = [(x, y) for x, y in zip(a.split(), b.split()) if x != y]
    assert len(a.split()) == len(b.split()) and len(diff) == 1


def test_unknown_class_is_rejected_with_choices() -> None:
    with pytest.raises(ValueError, match="tempo='presto'"):
        Attributes(mode="major", tempo="presto", brightness="dark", instrument="piano",
                   drums="drums", density="busy")
