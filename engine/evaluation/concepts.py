"""The shipped concepts: contrastive prompt templates and the descriptor that measures each.

One table, used by localisation (patching pairs, probe data), by every vector
method (CAA, AUSteer, SAE, the prompt-blend baseline) and by the benchmark, so
the prompts a vector was built from and the number it is judged by never drift
apart. Wording follows the demo corpus' vocabulary (engine/demo/captions.py):
adjective first, then instrument and noun ("happy piano loop").

``scale`` is the descriptor change that counts as "one unit" of the concept
(e.g. 400 Hz of spectral centroid). Alignment deltas are divided by it, so
AUCs of different concepts share a unit and can be averaged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from steerbridge.engine.evaluation import descriptors
from steerbridge.engine.extraction.caa import expand_templates
from steerbridge.engine.runtime.errors import EngineError

__all__ = ["Concept", "CONCEPTS", "get_concept", "DESCRIPTORS", "SECOND_OPINIONS", "EXTRACT_BASES",
           "HELD_OUT_BASES", "NEUTRAL_BASES", "NEUTRAL_HELD_OUT"]

# Base prompts the vectors are extracted from, and held-out ones they are judged on
# (same vocabulary, different instrument words and nouns: no prompt is reused).
EXTRACT_BASES: tuple[str, ...] = ("piano loop", "pluck melody", "synth pad tune", "bell song")
HELD_OUT_BASES: tuple[str, ...] = ("keys track", "harp melody", "strings loop", "chimes tune")

def _lazy(module: str, name: str) -> Callable[[np.ndarray, int], float]:
    """A descriptor from an optional module, imported on first use (keeps librosa/onnxruntime
    out of every import of this module)."""
    def call(audio: np.ndarray, sr: int) -> float:
        import importlib

        return float(getattr(importlib.import_module(module), name)(audio, sr))
    call.__name__ = name
    return call


DESCRIPTORS: dict[str, Callable[[np.ndarray, int], float]] = {
    "centroid_hz": descriptors.spectral_centroid,
    "onset_rate": descriptors.onset_rate,
    "tempo_bpm": descriptors.tempo_bpm,
    "mode_score": descriptors.mode_score,
    "loudness_db": descriptors.loudness_db,
    "sustain": descriptors.sustain,
    "librosa_tempo": _lazy("steerbridge.engine.evaluation.rhythm", "librosa_tempo"),
    "transcribed_mode": _lazy("steerbridge.engine.evaluation.transcription", "transcribed_mode"),
    "note_count": _lazy("steerbridge.engine.evaluation.transcription", "note_count"),
}
# Independent second opinions reported beside a concept's own descriptor (the
# `eval` extra: librosa and basic-pitch); a missing extra skips them, with a note.
SECOND_OPINIONS: dict[str, tuple[str, ...]] = {"tempo": ("librosa_tempo",), "mood": ("transcribed_mode",)}

# Concepts that name the instrument cannot use bases that already name one.
NEUTRAL_BASES: tuple[str, ...] = ("loop", "melody", "tune with drums", "song")
NEUTRAL_HELD_OUT: tuple[str, ...] = ("track", "loop with a beat")


@dataclass(frozen=True)
class Concept:
    """A contrast (positive vs negative wording) and how to hear it."""

    name: str
    positive: tuple[str, ...]  # templates with {base}
    negative: tuple[str, ...]
    descriptor: str  # key of DESCRIPTORS; grows when the concept is more present
    scale: float  # descriptor units per "one unit" of concept change
    label: str = ""  # what the positive direction sounds like, for reports
    names_instrument: bool = False  # templates name the instrument: use the neutral bases

    def __post_init__(self) -> None:
        if self.descriptor not in DESCRIPTORS:
            raise EngineError(f"concept '{self.name}': descriptor '{self.descriptor}' is not one of "
                              f"{sorted(DESCRIPTORS)}")
        if len(self.positive) != len(self.negative):
            raise EngineError(f"concept '{self.name}': positive and negative templates must pair up "
                              f"({len(self.positive)} vs {len(self.negative)})")

    def bases(self, bases: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """The bases this concept really uses: ``bases``, or the neutral set standing in for them
        when the concept names the instrument itself (held-out stays held-out)."""
        if not self.names_instrument:
            return tuple(bases)
        held_out = any(b in HELD_OUT_BASES for b in bases)
        pool = NEUTRAL_HELD_OUT if held_out else NEUTRAL_BASES
        return pool[:max(1, min(len(bases), len(pool)))]

    def prompts(self, bases: tuple[str, ...] | list[str] = EXTRACT_BASES) -> tuple[list[str], list[str]]:
        """Positive and negative prompts, paired index by index (same base, same template slot)."""
        bases = self.bases(bases)
        return expand_templates(self.positive, bases), expand_templates(self.negative, bases)

    def pairs(self, bases: tuple[str, ...] | list[str] = EXTRACT_BASES) -> list[tuple[str, str]]:
        """Counterfactual (target, source) pairs for patching: target has the concept."""
        pos, neg = self.prompts(bases)
        return list(zip(pos, neg))

    def score(self, audio: np.ndarray, sample_rate: int) -> float:
        """How much of the concept the audio shows (descriptor value, raw units)."""
        return float(DESCRIPTORS[self.descriptor](audio, sample_rate))


CONCEPTS: dict[str, Concept] = {c.name: c for c in (
    Concept("mood", positive=("happy {base}", "cheerful {base}"), negative=("sad {base}", "gloomy {base}"),
            descriptor="mode_score", scale=0.05, label="happier (major)"),
    Concept("tempo", positive=("fast {base}", "up-tempo {base}"), negative=("slow {base}", "laid-back {base}"),
            descriptor="onset_rate", scale=1.0, label="faster (more onsets/s)"),
    Concept("brightness", positive=("bright {base}", "crisp {base}"), negative=("dark {base}", "muffled {base}"),
            descriptor="centroid_hz", scale=300.0, label="brighter (higher centroid)"),
    Concept("drums", positive=("{base} with drums",), negative=("{base} no drums",),
            descriptor="onset_rate", scale=1.0, label="with drums (more onsets/s)"),
    Concept("density", positive=("busy {base}", "dense {base}"), negative=("sparse {base}", "minimal {base}"),
            descriptor="onset_rate", scale=1.0, label="busier (more notes/s)"),
    Concept("instrument", positive=("synth pad {base}", "strings {base}"),
            negative=("plucked synth {base}", "harp {base}"), descriptor="sustain", scale=0.1,
            label="pad, not pluck (held notes)", names_instrument=True),
)}


def get_concept(name: str) -> Concept:
    try:
        return CONCEPTS[name]
    except KeyError:
        raise EngineError(f"unknown concept '{name}'; shipped concepts are {sorted(CONCEPTS)}") from None
