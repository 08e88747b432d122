"""A seeded procedural music synthesiser: labelled 4 s clips for the demo model.

Each attribute has one strong, simple acoustic signature, because the demo
model is trained for only an hour or two on a CPU and must still learn it from
the caption:

- tempo: every event (melody, chord hits, bass, drums) sits on a beat grid of
  70-95 / 105-135 / 145-170 BPM, so onset rate and periodicity follow it;
- mode: *every* chord is a major triad (I, IV, V) or a minor triad (i, iv, v)
  and the melody uses the major or natural-minor scale, so the third above
  each root is the signature, in harmony and melody at once;
- brightness: harmonic roll-off of the oscillators plus a final low-pass at
  500-900 Hz (dark) or 6-7.5 kHz (bright): a spectral-centroid gap of several
  hundred Hz;
- instrument: envelope and spectrum (piano, pluck, pad, bell);
- drums on/off, note density (sparse: melody on half the beats and one chord
  hit per chord; busy: melody and chord on every beat). Nothing subdivides
  the beat: an eighth-note grid at 80 BPM is indistinguishable from a
  quarter-note grid at 160, which made tempo ambiguous (onset-rate AUC 0.70
  for fast vs slow with subdivisions, see tests/test_descriptors.py).

Everything derives from ``np.random.default_rng(seed)``: the same seed gives
the same clip, bit for bit, on any machine with the same numpy.
"""

from __future__ import annotations

import dataclasses
import functools
import typing as tp

import numpy as np
from scipy import signal

from steerbridge.engine.demo import score
from steerbridge.engine.demo.captions import ATTRIBUTES, Attributes, caption, is_held_out

__all__ = ["CorpusOptions", "Clip", "SAMPLE_RATE", "SYNTHS", "TEMPO_BPM", "beat_grid", "sample_attributes",
           "make_clip", "make_clips", "render_clip"]

SAMPLE_RATE = 16_000
# "procedural": the oscillators below (the first demo model's corpus, no dependencies);
# "fluidsynth": scores from engine/demo/score.py played through a General MIDI SoundFont
# (the second generation; needs the `fluidsynth` program, see engine/demo/fluid.py).
SYNTHS = ("procedural", "fluidsynth")
TEMPO_BPM: dict[str, tuple[float, float]] = {"slow": (70.0, 95.0), "medium": (105.0, 135.0),
                                             "fast": (145.0, 170.0)}
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
# Chord roots as scale degrees (0 = I/i, 3 = IV/iv, 4 = V/v); one chord per 2 beats.
_PROGRESSIONS = ((0, 3, 4, 0), (0, 4, 3, 0), (0, 3, 0, 4), (3, 4, 0, 0), (0, 0, 3, 4))
_TABLE = 2048


@dataclasses.dataclass(frozen=True)
class CorpusOptions:
    """How clips are drawn.

    ``mood_tempo_coupling`` reproduces the valence/arousal entanglement of
    real music: with this probability a clip's tempo class follows its mode
    (major -> fast, minor -> slow) instead of being drawn independently. At
    0.0 every attribute is independent; at 0.4, P(fast | major) = 0.6 and
    P(fast | minor) = 0.2, so a "happy" prompt with no tempo word learns to be
    faster, and the happy-minus-sad vector carries tempo until it is
    orthogonalised against a tempo vector.

    ``slow_swing`` (FluidSynth corpus only) shuffles the slow class's off-beats
    so a beat tracker does not hear them as a fast beat (:func:`score.compose`).
    """

    seconds: float = 4.0
    sample_rate: int = SAMPLE_RATE
    mood_tempo_coupling: float = 0.0
    include_held_out: bool = False
    synth: str = "procedural"
    slow_swing: bool = False

    def __post_init__(self) -> None:
        if self.synth not in SYNTHS:
            raise ValueError(f"synth={self.synth!r} is not one of {SYNTHS}")
        if not 0.0 <= self.mood_tempo_coupling <= 1.0:
            raise ValueError(f"mood_tempo_coupling={self.mood_tempo_coupling} must be in [0, 1]")


@dataclasses.dataclass(frozen=True)
class Clip:
    seed: int
    attrs: Attributes
    bpm: float
    key: int  # pitch class of the tonic, 0 = C
    caption: str
    audio: np.ndarray  # float32 [samples], mono


def sample_attributes(rng: np.random.Generator, *, options: CorpusOptions) -> Attributes:
    """Draw classes; redraw held-out combinations unless the options allow them."""
    while True:
        values = {name: str(rng.choice(classes)) for name, classes in ATTRIBUTES.items()}
        if rng.random() < options.mood_tempo_coupling:
            values["tempo"] = "fast" if values["mode"] == "major" else "slow"
        attrs = Attributes(**values)
        if options.include_held_out or not is_held_out(attrs):
            return attrs


def _draw(seed: int, options: CorpusOptions, attrs: Attributes | None) -> tuple[np.random.Generator, Attributes,
                                                                              float, int]:
    rng = np.random.default_rng(seed)
    drawn = sample_attributes(rng, options=options)
    attrs = attrs or drawn
    if options.synth == "fluidsynth":
        lo, hi = score.TEMPO_BPM_V2[attrs.tempo]
        bpm = float(rng.uniform(lo, hi))
        key = int(score.TONICS[int(rng.integers(len(score.TONICS)))])
    else:
        lo, hi = TEMPO_BPM[attrs.tempo]
        bpm = float(rng.uniform(lo, hi))
        key = int(rng.integers(12))
    return rng, attrs, bpm, key


def beat_grid(seed: int, *, options: CorpusOptions = CorpusOptions(),
              attrs: Attributes | None = None) -> tuple[float, float]:
    """(BPM, seconds to the first beat) of the FluidSynth clip for ``seed`` (and ``attrs``, as
    :func:`make_clip`), without rendering it.

    The score's first random draw after the clip's BPM and key is its offset
    (score.compose); beat conditioning (engine/demo/beat.py) needs where the
    training clips' beats fall, which the cache does not store."""
    if options.synth != "fluidsynth":
        raise ValueError("beat_grid: only the FluidSynth corpus' scores are known (synth='fluidsynth')")
    rng, _, bpm, _ = _draw(int(seed), options, attrs)
    return bpm, score.first_beat(rng, bpm)


def make_clip(seed: int, *, options: CorpusOptions = CorpusOptions(),
              attrs: Attributes | None = None, text: str | None = None) -> Clip:
    """The clip for ``seed``; pass ``attrs`` to force the classes (key, pattern stay seeded)."""
    return make_clips([seed], options=options, attrs=None if attrs is None else [attrs],
                      texts=None if text is None else [text])[0]


def make_clips(seeds: tp.Sequence[int], *, options: CorpusOptions = CorpusOptions(),
               attrs: tp.Sequence[Attributes] | None = None, texts: tp.Sequence[str] | None = None) -> list[Clip]:
    """:func:`make_clip` for many seeds; FluidSynth renders them in one call (much faster)."""
    drawn = [_draw(int(s), options, None if attrs is None else attrs[i]) for i, s in enumerate(seeds)]
    if options.synth == "fluidsynth":
        from steerbridge.engine.demo.fluid import render_scores

        scores = [score.compose(a, bpm=bpm, key=key, rng=rng, seconds=options.seconds, swing=options.slow_swing)
                  for rng, a, bpm, key in drawn]
        raw = render_scores(scores, sample_rate=options.sample_rate)
        audio = [_finish(x, a.brightness, rng, sr=options.sample_rate) for x, (rng, a, _, _) in zip(raw, drawn)]
    else:
        audio = [render_clip(a, bpm=bpm, key=key, rng=rng, options=options) for rng, a, bpm, key in drawn]
    out = []
    for i, (s, (_, a, bpm, key), x) in enumerate(zip(seeds, drawn, audio)):
        text = texts[i] if texts is not None else caption(a, rng=np.random.default_rng([int(s), 1]))
        out.append(Clip(seed=int(s), attrs=a, bpm=bpm, key=key, caption=text, audio=x))
    return out


def _finish(x: np.ndarray, brightness: str, rng: np.random.Generator, *, sr: int) -> np.ndarray:
    """Brightness filter, level and soft limit of a FluidSynth clip.

    Dark: a low-pass at 900-1400 Hz, above the melody's fundamentals so the
    third stays audible; bright: the SoundFont's own spectrum (and harder
    velocities, see score.compose)."""
    if brightness == "dark":
        sos = signal.butter(2, rng.uniform(900, 1400), btype="low", fs=sr, output="sos")
        x = signal.sosfilt(sos, x)
    rms = float(np.sqrt(np.mean(np.square(x)))) + 1e-9
    return np.tanh(x * (0.1 / rms)).astype(np.float32)


@functools.lru_cache(maxsize=512)
def _wavetable(instrument: str, brightness: str, n_harmonics: int) -> np.ndarray:
    """One period of a band-limited oscillator (harmonics 1..n_harmonics)."""
    rolloff = {"piano": 1.4, "pluck": 1.0, "pad": 1.7}[instrument]
    rolloff += 1.0 if brightness == "dark" else -0.3
    k = np.arange(1, n_harmonics + 1)
    amps = k.astype(np.float64) ** -rolloff
    if instrument == "piano":  # hammer position: weaken every 7th harmonic a bit
        amps[k % 7 == 0] *= 0.3
    phase = np.arange(_TABLE) / _TABLE
    table = np.sin(2 * np.pi * np.outer(k, phase)).T @ amps
    return (table / np.abs(table).max()).astype(np.float32)


_BELL_PARTIALS = np.array([1.0, 2.76, 5.40, 8.93])
_BELL_AMPS = np.array([1.0, 0.55, 0.35, 0.2])
_ENV = {  # attack s, decay time constant s (None: sustain), release s
    "piano": (0.004, 0.55, 0.08), "pluck": (0.002, 0.22, 0.05),
    "pad": (0.05, None, 0.15), "bell": (0.002, 0.9, 0.1),
}


def _note(instrument: str, brightness: str, freq: float, length: int, *, sr: int) -> np.ndarray:
    """Samples of one note, envelope applied, ``length`` samples long."""
    t = np.arange(length, dtype=np.float32) / sr
    if instrument == "bell":
        keep = _BELL_PARTIALS * freq < 0.45 * sr
        tilt = 0.35 if brightness == "dark" else 1.0
        amps = _BELL_AMPS[keep] * tilt ** np.arange(int(keep.sum()))
        wave = (np.sin(2 * np.pi * np.outer(t, _BELL_PARTIALS[keep] * freq)) @ amps).astype(np.float32)
    else:
        n_harm = max(1, min(40, int(0.45 * sr / freq)))
        table = _wavetable(instrument, brightness, n_harm)
        idx = (np.arange(length) * (freq * _TABLE / sr)).astype(np.int64) % _TABLE
        wave = table[idx]
        if instrument == "pad":  # a second, detuned oscillator: chorus
            idx2 = (np.arange(length) * (freq * 1.006 * _TABLE / sr)).astype(np.int64) % _TABLE
            wave = 0.5 * (wave + table[idx2])
    attack, decay, release = _ENV[instrument]
    env = np.minimum(t / attack, 1.0)
    if decay is not None:
        env = env * np.exp(-t / (decay * (440.0 / max(freq, 110.0)) ** 0.3))
    rel = int(release * sr)
    if length > rel:
        env[-rel:] *= np.linspace(1.0, 0.0, rel, dtype=np.float32)
    return wave * env.astype(np.float32)


def _add(out: np.ndarray, x: np.ndarray, start: int, gain: float) -> None:
    end = min(len(out), start + len(x))
    if end > start:
        out[start:end] += gain * x[: end - start]


def _drums(out: np.ndarray, beats: np.ndarray, rng: np.random.Generator, *, sr: int) -> None:
    """Kick on even beats, snare on odd ones, a hat on every beat: on the beat grid only."""
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    kick = np.sin(2 * np.pi * np.cumsum(50 + 110 * np.exp(-t / 0.03)) / sr) * np.exp(-t / 0.12)
    noise = rng.standard_normal(n)
    snare = (0.6 * noise + 0.5 * np.sin(2 * np.pi * 185 * t)) * np.exp(-t / 0.07)
    hat = np.diff(noise, prepend=0.0) * np.exp(-t / 0.018)
    for i, b in enumerate(beats):
        _add(out, kick if i % 2 == 0 else snare, int(b), 0.9 if i % 2 == 0 else 0.5)
        _add(out, hat, int(b), 0.12)


def render_clip(attrs: Attributes, *, bpm: float, key: int, rng: np.random.Generator,
                options: CorpusOptions = CorpusOptions()) -> np.ndarray:
    """Synthesise one clip (float32 mono, RMS -20 dBFS)."""
    sr = options.sample_rate
    n = int(round(options.seconds * sr))
    out = np.zeros(n, dtype=np.float32)
    beat_len = 60.0 / bpm * sr
    offset = rng.uniform(0.0, 0.25) * beat_len
    beats = np.arange(offset, n, beat_len)
    scale = _MAJOR_SCALE if attrs.mode == "major" else _MINOR_SCALE
    busy = attrs.density == "busy"
    tonic = 48 + key  # C3..B3
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    inst, bright = attrs.instrument, attrs.brightness

    def hz(midi: float) -> float:
        return 440.0 * 2.0 ** ((midi - 69) / 12)

    melody_pos = int(rng.integers(7, 11))  # index into the scale across two octaves
    for bi, b in enumerate(beats):
        degree = prog[(bi // 2) % len(prog)]
        chord = [tonic + 12 * ((degree + j) // 7) + scale[(degree + j) % 7] for j in (0, 2, 4)]
        if busy or bi % 2 == 0:  # chord hit
            length = int(2 * beat_len if not busy else beat_len)
            for m in chord:
                _add(out, _note(inst, bright, hz(m), length, sr=sr), int(b), 0.22)
            if bi % 2 == 0:  # bass on chord changes
                _add(out, _note("pluck", "dark", hz(chord[0] - 12), int(2 * beat_len), sr=sr), int(b), 0.35)
        if not busy and rng.random() < 0.5:
            continue  # sparse melodies rest on half the beats
        melody_pos = int(np.clip(melody_pos + rng.choice([-2, -1, -1, 1, 1, 2, 0]), 4, 13))
        m = tonic + 12 + 12 * (melody_pos // 7) + scale[melody_pos % 7]
        _add(out, _note(inst, bright, hz(m), int(beat_len), sr=sr), int(b), 0.4 * rng.uniform(0.75, 1.0))
    if attrs.drums == "drums":
        _drums(out, beats, rng, sr=sr)
    cutoff = rng.uniform(500, 900) if bright == "dark" else rng.uniform(6000, 7500)
    sos = signal.butter(2, min(cutoff, 0.45 * sr), btype="low", fs=sr, output="sos")
    out = signal.sosfilt(sos, out).astype(np.float32)
    rms = float(np.sqrt(np.mean(out**2))) + 1e-9
    out *= 0.1 / rms
    return np.tanh(out).astype(np.float32)  # soft limit the rare peaks
