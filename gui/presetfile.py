"""Preset files as the panel sees them: what "save" writes, unsaved changes, recent files.

"Save" stores the sound you hear: the knobs' current positions become the
preset's defaults and the current prompt/seed/length its scene, written
atomically by :func:`steerbridge.bridge.presets.model.save_preset` (validated before it
replaces the file). "Unsaved changes" is then a plain comparison: the preset
that saving would write now, against the one last loaded or saved. Moving a
knob away and back clears the ``*`` again, as a musician expects.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PyQt6.QtCore import QSettings

from steerbridge.bridge.control.state import StateSnapshot
from steerbridge.bridge.presets.model import Preset

__all__ = ["preset_from_state", "with_bindings_of", "RecentPresets", "MAX_RECENT"]

MAX_RECENT = 8


def preset_from_state(snap: StateSnapshot) -> Preset:
    """The preset that saving now would write: knob positions as defaults, the current scene."""
    preset = snap.preset
    scene = replace(preset.scene, prompt=snap.prompt, seed=snap.seed, seconds=snap.seconds,
                    negative_prompt=snap.negative_prompt)
    knobs = tuple(replace(k, default=snap.knobs[k.name].value) for k in preset.knobs)
    return replace(preset, scene=scene, knobs=knobs)


def with_bindings_of(baseline: Preset, learned: Preset) -> Preset:
    """``baseline`` with the MIDI bindings of ``learned`` (MIDI learn already wrote them to the file)."""
    if baseline.knob_names() != learned.knob_names():
        return baseline
    return replace(baseline, knobs=tuple(replace(b, midi=l.midi) for b, l in zip(baseline.knobs, learned.knobs)))


class RecentPresets:
    """The most recently opened or saved preset files, newest first, kept in ``settings``."""

    def __init__(self, settings: QSettings) -> None:
        self._settings = settings

    def paths(self) -> list[Path]:
        raw = self._settings.value("recent_presets", [], type=list) or []
        return [Path(p) for p in raw if isinstance(p, str) and p]

    def add(self, path: Path) -> None:
        path = path.resolve()
        paths = [path, *(p for p in self.paths() if p != path)][:MAX_RECENT]
        self._settings.setValue("recent_presets", [str(p) for p in paths])
        self._settings.sync()

    def remove(self, path: Path) -> None:
        self._settings.setValue("recent_presets", [str(p) for p in self.paths() if p != path])
        self._settings.sync()

    def existing(self) -> list[Path]:
        return [p for p in self.paths() if p.is_file()]
