"""ControlState: the one place where knob values and the scene live.

Actors: the OSC server thread, the MIDI callback thread(s) and the GUI thread
write; the scheduler thread and the player's control thread read. Nobody on
the audio thread touches this object (it takes a lock). Every change bumps one
version number; ``snapshot()`` returns an immutable picture with that
version, cached until the next change so a thousand readers cost one build.

Listeners get a small :class:`Change` (no snapshot is built for them) on the
thread that made the change, after the lock is released, so a listener may
read the state or even change it. A failing listener is logged, never
propagated into the OSC/MIDI thread that made the change.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

from steerbridge.bridge.presets.model import Knob, Preset
from steerbridge.bridge.util.listeners import Listeners
from steerbridge.engine.vocab import MAX_BPM, MIN_BPM

__all__ = ["KnobState", "StateSnapshot", "Change", "ControlState"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnobState:
    name: str
    value: float  # normalised knob position 0..1
    alpha: float  # steering strength at that position (the knob's curve applied)
    moved: int = 0  # the state version of its last change (0: not moved since the preset loaded)


@dataclass(frozen=True)
class StateSnapshot:
    version: int
    preset: Preset
    knobs: Mapping[str, KnobState]  # read-only, in preset order
    prompt: str
    seed: int
    seconds: float
    negative_prompt: str | None
    playing: bool
    learn_armed: str | None  # knob waiting for its MIDI control, if any
    bars: int = 2  # loop length in bars when a beat clock (Link) sets the tempo
    bpm: float | None = None  # the tempo a model with a beat input plays at (Link's, while it is on)

    def alphas(self) -> dict[str, float]:
        return {name: k.alpha for name, k in self.knobs.items()}

    def values(self) -> dict[str, float]:
        return {name: k.value for name, k in self.knobs.items()}

    def recent(self) -> tuple[str, ...]:
        """Knob names, the most recently moved first (never-moved ones last, in preset order)."""
        return tuple(sorted(self.knobs, key=lambda n: -self.knobs[n].moved))


@dataclass(frozen=True)
class Change:
    """What changed. ``kind``: knob | prompt | seed | seconds | bars | bpm | playing | learn | preset."""

    version: int
    kind: str
    name: str | None = None  # the knob, for kind == "knob" / "learn"
    value: object = None  # the new value (for knobs: the normalised position)
    alpha: float | None = None  # for knobs
    source: str = ""  # who changed it: "osc", "midi", "gui", ... (lets MIDI pickup see others' moves)


Listener = Callable[[Change], None]


@dataclass
class _Knob:
    spec: Knob
    value: float
    alpha: float
    moved: int = 0


class ControlState:
    """Thread-safe, versioned control values for one preset."""

    def __init__(self, preset: Preset) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._listeners: Listeners[Change] = Listeners()
        self._version = 0
        self._cached: StateSnapshot | None = None
        self._playing = False
        self._learn: str | None = None
        self._apply_preset(preset)

    # -- reading ---------------------------------------------------------
    def snapshot(self) -> StateSnapshot:
        with self._lock:
            if self._cached is None:
                self._cached = StateSnapshot(
                    version=self._version, preset=self._preset,
                    knobs=MappingProxyType({n: KnobState(n, k.value, k.alpha, k.moved) for n, k in self._knobs.items()}),
                    prompt=self._prompt, seed=self._seed, seconds=self._seconds,
                    negative_prompt=self._negative, playing=self._playing, learn_armed=self._learn,
                    bars=self._bars, bpm=self._bpm)
            return self._cached

    @property
    def version(self) -> int:
        return self._version  # NB: an int read is atomic under the GIL

    def value(self, name: str) -> float:
        with self._lock:
            return self._knob(name).value

    def wait_for_change(self, version: int, timeout: float | None = None) -> int:
        """Block until the version differs from ``version`` (or timeout); returns the current version."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != version, timeout=timeout)
            return self._version

    # -- writing ---------------------------------------------------------
    def set_value(self, name: str, value01: float, *, source: str = "") -> float:
        """Set a knob's normalised position (clamped to 0..1); returns the clamped value."""
        value = min(1.0, max(0.0, float(value01)))
        with self._lock:
            knob = self._knob(name)
            change = self._set_knob(knob, value, knob.spec.alpha_for(value), source)
        self._notify(change)
        return value

    def set_alpha(self, name: str, alpha: float, *, source: str = "") -> float:
        """Set a knob by alpha (clamped to the knob's range); returns the clamped alpha."""
        with self._lock:
            knob = self._knob(name)
            lo, hi = sorted((knob.spec.alpha_min, knob.spec.alpha_max))
            alpha = min(hi, max(lo, float(alpha)))
            change = self._set_knob(knob, knob.spec.value_for(alpha), alpha, source)
        self._notify(change)
        return alpha

    def set_prompt(self, prompt: str, *, source: str = "") -> None:
        if not prompt.strip():
            raise ValueError("the prompt is empty; send some words describing the music")
        self._set_field("prompt", "_prompt", prompt, source)

    def set_seed(self, seed: int, *, source: str = "") -> None:
        if not 0 <= int(seed) < 2**32:
            raise ValueError(f"seed {seed} is out of range; use 0..{2**32 - 1}")
        self._set_field("seed", "_seed", int(seed), source)

    def set_seconds(self, seconds: float, *, source: str = "") -> None:
        self._set_field("seconds", "_seconds", _seconds(seconds), source)

    def set_bpm(self, bpm: float | None, *, source: str = "") -> None:
        """The tempo a model with a beat input plays at (None: none given; other models ignore it).
        With a tempo knob in the preset the knob moves there (clamped to its range)."""
        bpm = _bpm(bpm)
        with self._lock:
            changes = self._set_tempo(bpm, source)
        for change in changes:
            self._notify(change)

    def set_loop_tempo(self, seconds: float, bpm: float, *, source: str = "") -> None:
        """Loop length and tempo at once (a Link tempo change re-times the loop): no snapshot sees one
        without the other, so no render starts at the new length and the old tempo."""
        bpm, seconds = _bpm(bpm), _seconds(seconds)
        with self._lock:
            changes = self._set_tempo(bpm, source)
            if self._seconds != seconds:
                self._seconds = seconds
                changes.append(self._bump("seconds", None, seconds, None, source))
        for change in changes:
            self._notify(change)

    def set_bars(self, bars: int, *, source: str = "") -> None:
        """Loop length in bars (used while Link sets the tempo: the seconds follow it)."""
        if isinstance(bars, bool) or int(bars) != bars or not 1 <= int(bars) <= 64:
            raise ValueError(f"loop length {bars!r} bars is out of range; use a whole number of bars 1..64")
        self._set_field("bars", "_bars", int(bars), source)

    def set_playing(self, playing: bool, *, source: str = "") -> None:
        self._set_field("playing", "_playing", bool(playing), source)

    def arm_learn(self, name: str | None, *, source: str = "") -> None:
        """Arm MIDI learn for knob ``name`` (None disarms): the next CC binds to it."""
        if name is not None:
            with self._lock:
                self._knob(name)
        self._set_field("learn", "_learn", name, source)

    def load_preset(self, preset: Preset, *, source: str = "") -> None:
        """Switch to another preset: knobs and scene reset to its defaults."""
        with self._lock:
            self._apply_preset(preset)
            change = self._bump("preset", None, preset, None, source)
        self._notify(change)

    def replace_preset(self, preset: Preset, *, source: str = "") -> None:
        """Swap in an edited version of the current preset (e.g. a new MIDI
        binding), keeping the knobs' positions and the scene as they are."""
        with self._lock:
            values = {n: k.value for n, k in self._knobs.items()}
            self._preset = preset
            self._knobs = {k.name: _Knob(k, values.get(k.name, k.default), k.alpha_for(values.get(k.name, k.default)))
                           for k in preset.knobs}
            if (tempo := self._tempo_knob()) is not None:
                self._bpm = tempo.alpha
            change = self._bump("preset", None, preset, None, source)
        self._notify(change)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(change)`` after every change; returns a function that removes it."""
        return self._listeners.add(listener)

    # -- internals -------------------------------------------------------
    def _apply_preset(self, preset: Preset) -> None:
        self._preset = preset
        self._knobs = {k.name: _Knob(k, k.default, k.default_alpha) for k in preset.knobs}
        self._prompt, self._seed = preset.scene.prompt, preset.scene.seed
        self._seconds, self._negative = preset.scene.seconds, preset.scene.negative_prompt
        self._bars = preset.scene.bars
        tempo = self._tempo_knob()
        self._bpm = tempo.alpha if tempo is not None else preset.scene.bpm
        self._learn = None
        self._cached = None

    def _tempo_knob(self) -> _Knob | None:
        return next((k for k in self._knobs.values() if k.spec.is_tempo), None)

    def _knob(self, name: str) -> _Knob:
        try:
            return self._knobs[name]
        except KeyError:
            raise KeyError(f"no knob named {name!r}; knobs: {', '.join(self._knobs) or 'none'}") from None

    def _set_knob(self, knob: _Knob, value: float, alpha: float, source: str) -> Change | None:
        # Called with the lock held; the caller notifies after releasing it.
        if knob.value == value and knob.alpha == alpha:
            return None  # no version bump: a repeated value must not trigger renders
        knob.value, knob.alpha, knob.moved = value, alpha, self._version + 1
        if knob.spec.is_tempo:
            self._bpm = alpha  # the tempo knob is the scene's tempo
        return self._bump("knob", knob.spec.name, value, alpha, source)

    def _set_tempo(self, bpm: float | None, source: str) -> list[Change]:
        # Called with the lock held. A tempo knob holds the tempo: move it (it sets _bpm).
        knob = self._tempo_knob()
        if knob is not None:
            if bpm is None:
                return []  # a tempo knob always gives a tempo
            lo, hi = sorted((knob.spec.alpha_min, knob.spec.alpha_max))
            alpha = min(hi, max(lo, bpm))
            change = self._set_knob(knob, knob.spec.value_for(alpha), alpha, source)
            return [change] if change is not None else []
        if self._bpm == bpm:
            return []
        self._bpm = bpm
        return [self._bump("bpm", None, bpm, None, source)]

    def _set_field(self, kind: str, attr: str, value: object, source: str) -> None:
        with self._lock:
            if getattr(self, attr) == value:
                return
            setattr(self, attr, value)
            change = self._bump(kind, value if kind == "learn" else None, value, None, source)
        self._notify(change)

    def _bump(self, kind: str, name: object, value: object, alpha: float | None, source: str) -> Change:
        self._version += 1
        self._cached = None
        self._changed.notify_all()
        return Change(self._version, kind, name if isinstance(name, str) else None, value, alpha, source)

    def _notify(self, change: Change | None) -> None:
        if change is None:
            return
        for listener in self._listeners:  # a copied-on-write list: safe without the lock
            try:
                listener(change)
            except Exception:
                log.exception("state listener %r failed on %s", listener, change)


def _seconds(seconds: float) -> float:
    if not 0 < float(seconds) <= 600:
        raise ValueError(f"loop length {seconds} s is out of range; use 0 < seconds <= 600")
    return float(seconds)


def _bpm(bpm: float | None) -> float | None:
    if bpm is not None and (isinstance(bpm, bool) or not MIN_BPM <= float(bpm) <= MAX_BPM):
        raise ValueError(f"tempo {bpm!r} BPM is out of range; use {MIN_BPM:g}..{MAX_BPM:g}")
    return None if bpm is None else float(bpm)
