"""``/steer/preset NAME`` served off the OSC server thread.

The handler only checks the argument's type and queues the request; the
``steerbridge-preset-load`` thread (a :class:`~steerbridge.bridge.util.latest.LatestWorker`)
confines the name to the presets folder, reads and parses the file and hands
the preset on (to the session, which applies it at once or starts another
model in the background). A slow or stalled file system therefore never
delays knob messages. Requests coalesce: one still waiting is replaced by a
newer one (the newest preset asked for is the one loaded). Every failure is
reported as before: ``/steer/error bad_preset ...`` (or ``bad_value`` when the
session refuses the preset) to subscribers and to the sender.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from steerbridge.bridge.presets.model import Preset, PresetError, load_preset
from steerbridge.bridge.util.latest import LatestWorker

__all__ = ["PresetRequests", "confine"]

log = logging.getLogger(__name__)
Address = tuple[str, int]
Report = Callable[[str, str, Address], None]  # (kind, message, sender)


def confine(presets_dir: Path | None, name: str) -> Path | None:
    """``name`` as a .toml file inside ``presets_dir``, or None (no traversal, no symlinks out)."""
    if presets_dir is None or not name or "\x00" in name:
        return None
    candidate = Path(name if name.endswith(".toml") else f"{name}.toml")
    if candidate.is_absolute():
        return None
    path = (presets_dir / candidate).resolve()
    return path if path.is_relative_to(presets_dir) and path.is_file() else None


class PresetRequests:
    """Load requested presets on their own thread and pass them to ``on_preset``; errors go to ``report``."""

    def __init__(self, presets_dir: Path | None, *, on_preset: Callable[[Preset], None], report: Report) -> None:
        self.presets_dir, self._on_preset, self._report = presets_dir, on_preset, report
        self._worker = LatestWorker("steerbridge-preset-load")
        self.loaded = 0  # presets handed on

    def request(self, name: str, sender: Address, address: str) -> None:
        """Queue a load of preset ``name`` asked for by ``sender``; returns at once."""
        self._worker.submit(lambda: self._load(name, sender, address), key="preset")

    def wait_idle(self, timeout: float | None = None) -> bool:
        return self._worker.wait_idle(timeout)

    def close(self) -> None:
        self._worker.close(finish=False)

    def _load(self, name: str, sender: Address, address: str) -> None:
        try:
            path = confine(self.presets_dir, name)
        except (OSError, RuntimeError) as exc:  # e.g. a symlink loop, an unreadable folder
            path = None
            log.info("preset %r could not be resolved: %s", name, exc)
        if path is None:
            self._report("bad_preset", f"{address}: {name!r} is not a preset file inside {self.presets_dir}; "
                         "send a file name such as 'demo.toml'", sender)
            return
        try:
            preset = load_preset(path)
        except PresetError as exc:
            self._report("bad_preset", str(exc), sender)
            return
        try:
            self._on_preset(preset)
        except (ValueError, KeyError) as exc:  # the session says why it cannot take this preset
            self._report("bad_value", str(exc).strip("'\""), sender)
            return
        except Exception as exc:  # noqa: BLE001 - reported, never lost in a thread
            log.exception("applying preset %s failed", path)
            self._report("bad_preset", f"{address}: could not switch to {path.name}: {type(exc).__name__}: {exc}",
                         sender)
            return
        self.loaded += 1
