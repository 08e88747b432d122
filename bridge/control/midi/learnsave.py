"""Saving MIDI-learned bindings into the preset file, off the MIDI threads.

A learned binding takes effect at once (the router puts it into the live
preset); writing it into the preset file (atomic, comments kept:
:func:`~steerbridge.bridge.presets.model.set_midi_binding`) happens on the
``steerbridge-midi-save`` thread, so an rtmidi callback never waits on the
file system. Saves coalesce per file: the job is "make the file's bindings
equal to the newest live preset's", so a burst of learns is one read and a
few small writes, and nothing learned is lost. A failure (read-only folder,
a file edited into something unloadable) is reported through ``on_error``
(the session sends it as ``/steer/error midi_learn ...`` and shows it in the
panel); the binding keeps working for this session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from steerbridge.bridge.presets.model import MidiBinding, Preset, load_preset, set_midi_binding
from steerbridge.bridge.util.latest import LatestWorker

__all__ = ["BindingSaver", "save_bindings"]

log = logging.getLogger(__name__)


def save_bindings(path: Path, bindings: dict[str, MidiBinding | None]) -> Preset:
    """Make the MIDI bindings in preset file ``path`` equal to ``bindings`` (knob name -> binding or None).

    Starts from the file as it is on disk (other edits there are kept) and
    rewrites only the knobs whose binding differs; knobs the file lacks are skipped.
    """
    disk = load_preset(path, check_files=False)
    for name, binding in bindings.items():
        if name in disk.knob_names() and disk.knob(name).midi != binding:
            disk = set_midi_binding(disk, name, binding)
    return disk


class BindingSaver:
    """Writes the bindings of presets handed to :meth:`save` into their files, newest per file."""

    def __init__(self, *, on_error: Callable[[str], None] | None = None) -> None:
        self._on_error = on_error
        self._worker = LatestWorker("steerbridge-midi-save")
        self.saved = 0

    def save(self, preset: Preset) -> None:
        """Queue writing ``preset``'s bindings into ``preset.path``; returns at once."""
        if preset.path is None:
            return
        path, bindings = preset.path, {k.name: k.midi for k in preset.knobs}
        self._worker.submit(lambda: self._write(path, bindings), key=path)

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._worker.wait_idle(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Finish the saves still queued (a learned binding is not lost on shutdown), then stop."""
        self._worker.close(finish=True, timeout=timeout)

    def _write(self, path: Path, bindings: dict[str, MidiBinding | None]) -> None:
        try:
            save_bindings(path, bindings)
        except Exception as exc:  # noqa: BLE001 - PresetError, OSError, ...: all reported, none lost in a thread
            message = (f"the learned MIDI binding works now but was not saved into {path}: {exc}; "
                       "check that the file is writable and loads, then learn again or save the preset")
            log.warning("%s", message)
            if self._on_error is not None:
                self._on_error(message)
            return
        self.saved += 1
