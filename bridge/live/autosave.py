"""Autosave of the live control state, so a crash loses at most the last few seconds of knob moves.

An :class:`Autosaver` thread writes the knob positions, prompt, seed and loop
length of a :class:`~steerbridge.bridge.control.state.ControlState` to a small JSON file
(atomically: :mod:`steerbridge.bridge.util.atomic`) whenever the state's version has changed,
at most once per ``every_s`` seconds, and once more on :meth:`Autosaver.stop`.
:func:`restore` puts a saved state back on start, if it was saved for the
same preset file. Threads: the autosaver waits on the state's condition and
writes a few hundred bytes; it never touches audio.

Use (the session or ``serve`` owns the lifetime)::

    restore(state, path)                 # before the first render is planned
    saver = Autosaver(state, path).start()
    ...
    saver.stop()                         # final write
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from steerbridge.bridge.control.state import ControlState, StateSnapshot
from steerbridge.bridge.util.atomic import atomic_write_text

__all__ = ["SavedState", "Autosaver", "restore", "read_autosave", "default_autosave_path", "FORMAT_VERSION"]

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SavedState:
    format_version: int
    preset: str | None  # the preset file the values belong to (absolute), or None
    knobs: dict[str, float]  # normalised positions 0..1
    prompt: str
    seed: int
    seconds: float
    version: int  # the ControlState version that was saved
    saved_at: float  # time.time()

    @classmethod
    def of(cls, snap: StateSnapshot) -> SavedState:
        path = snap.preset.path
        return cls(FORMAT_VERSION, str(path) if path is not None else None, snap.values(), snap.prompt,
                   snap.seed, snap.seconds, snap.version, time.time())


def default_autosave_path(preset: str | os.PathLike[str] | None) -> Path:
    """``$XDG_STATE_HOME/steerbridge/autosave-<name>-<hash>.json``: one file per preset, outside its folder
    (which may be read-only or under version control)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "steerbridge"
    if preset is None:
        return base / "autosave.json"
    resolved = str(Path(preset).expanduser().resolve())
    return base / f"autosave-{Path(resolved).stem}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}.json"


def read_autosave(path: str | os.PathLike[str]) -> SavedState | None:
    """The saved state, or None when there is none or it cannot be used (logged, never raised:
    a bad autosave must not stop a performance from starting)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {data.get('format_version')!r}, expected {FORMAT_VERSION}")
        saved = SavedState(**data)
        if not isinstance(saved.knobs, dict) or not all(isinstance(v, (int, float)) for v in saved.knobs.values()):
            raise ValueError("knobs must map names to numbers")
        return saved
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("ignoring autosave %s (%s: %s); delete it if it keeps coming back", path,
                    type(exc).__name__, exc)
        return None


def restore(state: ControlState, path: str | os.PathLike[str], *, source: str = "autosave") -> SavedState | None:
    """Apply the autosave at ``path`` to ``state`` if it belongs to the state's preset; returns what was applied.

    Knobs the preset no longer has are skipped; values are clamped as any
    other control input; a prompt/seed/length the state refuses is left as it is.
    """
    saved = read_autosave(path)
    preset = state.snapshot().preset.path
    if saved is None:
        return None
    if saved.preset != (str(preset) if preset is not None else None):
        log.info("autosave %s is for preset %s, not %s: not restored", path, saved.preset, preset)
        return None
    names = set(state.snapshot().knobs)
    for name, value in saved.knobs.items():
        if name in names:
            state.set_value(name, float(value), source=source)
    for setter, value in ((state.set_prompt, saved.prompt), (state.set_seed, saved.seed),
                          (state.set_seconds, saved.seconds)):
        try:
            setter(value, source=source)  # type: ignore[operator]
        except (ValueError, TypeError) as exc:
            log.warning("autosave %s: %s not restored: %s", path, setter.__name__[4:], exc)
    return saved


class Autosaver:
    """Writes ``state`` to ``path`` at most every ``every_s`` seconds while it changes."""

    def __init__(self, state: ControlState, path: str | os.PathLike[str], *, every_s: float = 2.0) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s={every_s}: the autosave interval must be positive")
        self.state, self.path, self.every_s = state, Path(path), every_s
        self.saves = 0
        self.errors = 0
        self._saved_version = -1
        self._lock = threading.Lock()  # one writer at a time: an older snapshot must never land last
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Autosaver:
        self._thread = threading.Thread(target=self._run, name="steerbridge-autosave", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.save_now()

    def save_now(self) -> bool:
        """Write the state if it changed since the last write; returns whether it wrote."""
        with self._lock:
            snap = self.state.snapshot()
            if snap.version == self._saved_version:
                return False
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(self.path, json.dumps(asdict(SavedState.of(snap)), indent=1) + "\n")
            except OSError as exc:  # a full disk must not stop the music: keep trying, say it once per failure run
                self.errors += 1
                if self.errors == 1:
                    log.warning("autosave to %s failed: %s; retrying every %.0f s", self.path, exc, self.every_s)
                return False
            self._saved_version, self.saves, self.errors = snap.version, self.saves + 1, 0
            return True

    def _run(self) -> None:
        while not self._stop.is_set():
            # Sleep until something changes (or we are stopped), then write; the
            # wait after a write bounds the rate to one write per every_s.
            self.state.wait_for_change(self._saved_version, timeout=self.every_s)
            if self._stop.is_set():
                return
            self.save_now()
            self._stop.wait(self.every_s)
