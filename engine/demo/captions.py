"""Attribute vocabulary of the demo corpus and the captions written from it.

Every labelled attribute has a few classes, and every class a few synonyms, so
the text encoder sees varied wording for one acoustic fact ("happy" /
"joyful" / "cheerful" all mean major harmony and melody). A caption mentions
each attribute only with some probability: the model must learn what an
unmentioned attribute sounds like on average, which is what makes the
mood/tempo entanglement (see ``corpus.CorpusOptions.mood_tempo_coupling``)
audible in a prompt that names only the mood.

Held-out combinations (:data:`HELD_OUT`) never appear in the training corpus;
prompt-following is measured on them so it tests composition, not recall.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = [
    "ATTRIBUTES",
    "SYNONYMS",
    "HELD_OUT",
    "Attributes",
    "is_held_out",
    "caption",
    "phrase",
]

# Classes per attribute, in a fixed order (tests and metrics index them).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "mode": ("major", "minor"),
    "tempo": ("slow", "medium", "fast"),
    "brightness": ("dark", "bright"),
    "instrument": ("piano", "pluck", "pad", "bell"),
    "drums": ("drums", "nodrums"),
    "density": ("sparse", "busy"),
}

SYNONYMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("mode", "major"): ("happy", "joyful", "cheerful", "uplifting"),
    ("mode", "minor"): ("sad", "melancholic", "gloomy", "somber"),
    ("tempo", "slow"): ("slow", "laid-back", "downtempo", "unhurried"),
    ("tempo", "medium"): ("mid-tempo", "moderate", "steady"),
    ("tempo", "fast"): ("fast", "up-tempo", "driving", "rapid"),
    ("brightness", "dark"): ("dark", "muffled", "warm", "mellow"),
    ("brightness", "bright"): ("bright", "crisp", "sparkling", "brilliant"),
    ("instrument", "piano"): ("piano", "keys", "grand piano"),
    ("instrument", "pluck"): ("pluck", "plucked synth", "harp"),
    ("instrument", "pad"): ("pad", "synth pad", "strings"),
    ("instrument", "bell"): ("bell", "chimes", "glockenspiel"),
    ("drums", "drums"): ("with drums", "with a beat", "with percussion"),
    ("drums", "nodrums"): ("no drums", "without percussion", "drumless"),
    ("density", "sparse"): ("sparse", "minimal", "simple"),
    ("density", "busy"): ("busy", "dense", "intricate"),
}

# (instrument, tempo, mode) triples kept out of training: one per instrument,
# covering both modes and all three tempi.
HELD_OUT: frozenset[tuple[str, str, str]] = frozenset({
    ("piano", "fast", "minor"),
    ("pluck", "slow", "major"),
    ("pad", "medium", "minor"),
    ("bell", "fast", "major"),
})

_NOUNS = ("loop", "track", "tune", "song", "melody")
# Probability that a caption names each attribute.
_MENTION = {"mode": 0.85, "tempo": 0.85, "brightness": 0.85, "instrument": 0.9,
            "drums": 0.7, "density": 0.6}


@dataclasses.dataclass(frozen=True)
class Attributes:
    """The labelled classes of one clip (values from :data:`ATTRIBUTES`)."""

    mode: str
    tempo: str
    brightness: str
    instrument: str
    drums: str
    density: str

    def __post_init__(self) -> None:
        for name, classes in ATTRIBUTES.items():
            value = getattr(self, name)
            if value not in classes:
                raise ValueError(f"{name}={value!r} is not one of {classes}")

    def replace(self, **changes: str) -> "Attributes":
        return dataclasses.replace(self, **changes)


def is_held_out(attrs: Attributes) -> bool:
    return (attrs.instrument, attrs.tempo, attrs.mode) in HELD_OUT


def phrase(attribute: str, value: str, *, variant: int = 0) -> str:
    """The ``variant``-th synonym (cycled) of one class."""
    words = SYNONYMS[(attribute, value)]
    return words[variant % len(words)]


def caption(attrs: Attributes, *, rng: np.random.Generator,
            mention: dict[str, bool] | None = None) -> str:
    """A templated caption; ``mention`` forces which attributes are named.

    Adjectives (mode, tempo, brightness, density) come first in random order,
    then the instrument, a noun, and the drums phrase, e.g.
    ``"cheerful driving crisp piano loop with drums"``.
    """
    if mention is None:
        mention = {k: bool(rng.random() < p) for k, p in _MENTION.items()}

    def pick(attribute: str) -> str:
        return phrase(attribute, getattr(attrs, attribute),
                      variant=int(rng.integers(len(SYNONYMS[(attribute, getattr(attrs, attribute))]))))

    adjectives = [pick(a) for a in ("mode", "tempo", "brightness", "density") if mention.get(a)]
    rng.shuffle(adjectives)
    words = list(adjectives)
    if mention.get("instrument"):
        words.append(pick("instrument"))
    words.append(_NOUNS[int(rng.integers(len(_NOUNS)))])
    if mention.get("drums"):
        words.append(pick("drums"))
    return " ".join(words)
