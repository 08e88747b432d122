"""Procedural scores for the second-generation demo corpus: notes, not samples.

A score is a list of MIDI notes that FluidSynth (:mod:`steerbridge.engine.demo.fluid`)
plays through a General MIDI SoundFont, so the corpus sounds like instruments.
Each attribute has one unmistakable musical signature:

- **mode**: every chord is a major (I, IV, V) or minor (i, iv, v) triad, voiced
  around middle C to C6 where the 80-band mel the model works in resolves a
  semitone; the melody sits on chord tones with the *third* on the strong beats
  and held, so the interval that makes major or minor is sustained and audible
  in harmony and melody at once;
- **tempo**: 65-85 / 100-120 / 140-170 BPM; the beat is always stated: with
  drums a kick on every beat and hats on the eighths, without drums the bass
  plays every beat, so an onset-strength tempo estimator (librosa) finds it.
  With ``swing`` a slow clip's off-beat notes (hats, busy passing tones) sit
  at 2/3 of the beat, a shuffle: straight eighths at 65-85 BPM are a grid at
  130-170, and librosa read half of the busy slow clips at double tempo,
  like fast ones (right on 71 % of slow clips straight, 94 % swung, with the
  same notes: ``benchmarks/demo_timekeeping.py --corpus-clips 240``);
- **density**: sparse = sustained chords and a quarter-note melody with rests;
  busy = chords re-struck on every beat and an eighth-note melody;
- **instrument**: a General MIDI program per class (piano, harp, strings,
  glockenspiel); **brightness** is a post filter in :mod:`fluid` plus velocity
  (harder notes are brighter in the SoundFont).

Only four tonics (C, D, F, G) are used, a documented simplification: a 12 M
parameter model on a CPU budget learns the third above a few tonics far more
easily than relative pitch in every key.
Everything derives from the ``rng`` passed in, so a seed fixes the score.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from steerbridge.engine.demo.captions import Attributes

__all__ = ["Note", "Score", "PROGRAMS", "TEMPO_BPM_V2", "TONICS", "compose", "first_beat"]

# General MIDI programs (0-based) per instrument class, and the bass under them.
PROGRAMS: dict[str, int] = {"piano": 0, "pluck": 46, "pad": 48, "bell": 9}
BASS_PROGRAM = 32  # acoustic bass
TEMPO_BPM_V2: dict[str, tuple[float, float]] = {"slow": (65.0, 85.0), "medium": (100.0, 120.0),
                                                "fast": (140.0, 170.0)}
TONICS = (0, 2, 5, 7)  # C, D, F, G
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
# Chord roots as scale degrees (0 = I/i, 3 = IV/iv, 4 = V/v); one chord per 2 beats.
_PROGRESSIONS = ((0, 3, 4, 0), (0, 4, 3, 0), (0, 3, 0, 4), (0, 0, 3, 4), (0, 3, 3, 0))
_DRUM = {"kick": 36, "snare": 38, "hat": 42}
# The bell (glockenspiel) sounds two octaves above its written note: write it lower.
_OCTAVE_SHIFT = {"bell": -12}


@dataclasses.dataclass(frozen=True)
class Note:
    start: float  # seconds
    duration: float  # seconds
    pitch: int  # MIDI note number
    velocity: int
    channel: int  # 0 = lead instrument, 1 = bass, 9 = drums (General MIDI)


@dataclasses.dataclass(frozen=True)
class Score:
    notes: tuple[Note, ...]
    program: int  # channel 0's General MIDI program
    seconds: float


def _chord(tonic: int, scale: tuple[int, ...], degree: int) -> list[int]:
    return [tonic + 12 * ((degree + j) // 7) + scale[(degree + j) % 7] for j in (0, 2, 4)]


def first_beat(rng: np.random.Generator, bpm: float) -> float:
    """Seconds to the clip's first beat: the first draw :func:`compose` makes (corpus.beat_grid replays it)."""
    return float(rng.uniform(0.0, 0.2)) * (60.0 / bpm)  # the same float as before it was factored out


def compose(attrs: Attributes, *, bpm: float, key: int, rng: np.random.Generator,
            seconds: float = 4.0, swing: bool = False) -> Score:
    """The notes of one clip: chords, melody, bass and (optionally) drums; ``swing``: slow clips shuffle."""
    beat = 60.0 / bpm
    off = 2.0 / 3.0 if swing and attrs.tempo == "slow" else 0.5  # where the off-beat falls in a beat
    offset = first_beat(rng, bpm)
    n_beats = int(np.ceil((seconds - offset) / beat)) + 1
    scale = _MAJOR if attrs.mode == "major" else _MINOR
    busy = attrs.density == "busy"
    shift = _OCTAVE_SHIFT.get(attrs.instrument, 0)
    tonic = 60 + key + shift  # chords from middle C up
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    loud = 0 if attrs.brightness == "dark" else 25
    notes: list[Note] = []

    def add(start: float, dur: float, pitch: int, vel: float, channel: int = 0) -> None:
        if start < seconds:
            notes.append(Note(start, min(dur, seconds + 0.5 - start), int(pitch),
                              int(np.clip(vel + loud + rng.integers(-6, 7), 20, 127)), channel))

    for bi in range(n_beats):
        t = offset + bi * beat
        degree = prog[(bi // 2) % len(prog)]
        chord = _chord(tonic, scale, degree)
        if bi % 2 == 0 or busy:  # sustained chord per 2 beats, or re-struck every beat
            length = (2 * beat if not busy else beat) * 0.95
            for m in chord:
                add(t, length, m, 62)
        root = chord[0] - shift - 24
        add(t, beat * 0.9, root if bi % 2 == 0 else root + 7, 78, channel=1)  # the bass states every beat
        third = chord[1] + 12
        if bi % 2 == 0:  # strong beat: the chord's third, held
            add(t, beat * (1.9 if not busy else 0.95), third, 92)
        elif busy or rng.random() < 0.6:
            add(t, beat * 0.9, int(rng.choice([chord[0] + 12, chord[2] + 12, third])), 80)
        if busy:  # eighth-note passing tones between the chord tones
            add(t + off * beat, beat * 0.45, tonic + 12 + scale[int(rng.integers(7))], 70)
        if attrs.drums == "drums":
            add(t, 0.1, _DRUM["kick"], 100, channel=9)
            if bi % 2 == 1:
                add(t, 0.1, _DRUM["snare"], 80, channel=9)
            for h in (0.0, off):
                add(t + h * beat, 0.05, _DRUM["hat"], 60 if h else 72, channel=9)
    return Score(notes=tuple(notes), program=PROGRAMS[attrs.instrument], seconds=seconds)
