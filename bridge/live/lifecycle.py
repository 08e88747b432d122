"""PresetSwitcher: preset loads and model swaps that never block the thread that asks.

``/steer/preset`` arrives on the OSC server thread, a MIDI program change or
the panel on theirs; loading another model takes seconds to minutes. The
switcher takes the request and returns at once:

- a preset on the model already loaded (and nothing in flight) is applied on
  the caller's thread: a state change, as cheap as a knob move;
- anything else goes to the ``steerbridge-preset-switch`` thread, which starts
  the new engine while the old one keeps rendering and the player keeps
  playing the old loops; control messages keep reaching the (old) state. Only
  when the new engine is up is it swapped in, with the new preset.

Requests coalesce, newest wins: a second request while a model loads
supersedes the first (the load that finishes is kept only if the newest
request needs that very engine; otherwise it is closed and the newest one is
served). The phases are reported through ``on_phase(phase, detail)``:
``loading`` -> ``ready``, or ``error`` with the reason (the old engine stays).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

from steerbridge.bridge.engine_link.client import EngineClient
from steerbridge.bridge.engine_link.factory import make_client
from steerbridge.bridge.live.progress import lower_priority

if TYPE_CHECKING:
    from steerbridge.bridge.live.options import SessionOptions
    from steerbridge.bridge.presets.model import Preset

__all__ = ["PresetSwitcher", "engine_key", "start_client", "close_client"]

log = logging.getLogger(__name__)
P = TypeVar("P")  # a preset
C = TypeVar("C")  # an engine client


class PresetSwitcher(Generic[P, C]):
    """Serve preset requests without blocking; see the module docstring.

    ``engine_key(preset)``: what must match for two presets to share an engine;
    ``current_key()``: the key of the engine running now; ``make(preset)``:
    start an engine for it (blocking; runs on the switcher's thread);
    ``apply(preset, engine)``: switch to the preset, with a new engine or None
    (keep the current one); ``close(engine)``: dispose of an engine not used.
    """

    def __init__(self, *, engine_key: Callable[[P], Hashable], current_key: Callable[[], Hashable],
                 make: Callable[[P], C], apply: Callable[[P, C | None], None], close: Callable[[C], None],
                 on_phase: Callable[[str, str], None] = lambda phase, detail: None) -> None:
        self._key, self._current, self._make, self._apply, self._close = engine_key, current_key, make, apply, close
        self._on_phase = on_phase
        self.phase = "ready"
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._latest: P | None = None
        self._busy = False
        self._stopping = False
        self.requests = self.swaps = self.superseded = 0
        self._thread = threading.Thread(target=self._run, name="steerbridge-preset-switch", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """True while a request is being served (a model loading) or waiting."""
        with self._lock:
            return self._busy or self._latest is not None

    def request(self, preset: P) -> None:
        """Switch to ``preset`` as soon as possible; returns at once."""
        with self._lock:
            self.requests += 1
            inline = not self._busy and self._latest is None and self._key(preset) == self._current()
            if not inline:
                self._latest = preset
        if inline:
            self._apply(preset, None)
        else:
            self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving; an engine still loading is closed when its load ends."""
        with self._lock:
            self._stopping, self._latest = True, None
        self._wake.set()
        self._thread.join(timeout=timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no request is in flight (tests, tools); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.busy:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _take(self) -> P | None:
        with self._lock:
            preset, self._latest = self._latest, None
            self._busy = preset is not None and not self._stopping
            return preset if self._busy else None

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while (preset := self._take()) is not None:
                self._serve(preset)
            if self._stopping:
                return

    def _report(self, phase: str, detail: str) -> None:
        self.phase = phase
        self._on_phase(phase, detail)

    def _serve(self, preset: P) -> None:
        key = self._key(preset)
        if key == self._current():
            self._apply(preset, None)
            if self.phase == "loading":  # a superseded load: the engine running now serves the newest request
                self._report("ready", _model(key))
            return
        self._report("loading", _model(key))
        try:
            engine = self._make(preset)
        except Exception as exc:  # noqa: BLE001 - any failure to load is reported; the old engine plays on
            log.warning("engine for %s did not start: %s", key, exc)
            self._report("error", f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            newer, stopping = self._latest, self._stopping
            if newer is not None and self._key(newer) == key:
                preset, self._latest, newer = newer, None, None  # the newest wants this very engine
        if stopping or newer is not None:
            self.superseded += 1
            self._close(engine)  # the newest request is served next (maybe by the engine running now)
            return
        try:
            self._apply(preset, engine)
        except Exception as exc:  # noqa: BLE001
            log.exception("switching to the new engine failed")
            self._report("error", f"{type(exc).__name__}: {exc}")
            return
        self.swaps += 1
        self._report("ready", _model(key))


def _model(key: Hashable) -> str:
    """The model part of an engine key (its first item), for reports."""
    return str(key[0]) if isinstance(key, tuple) and key else str(key)


def engine_key(preset: Preset) -> tuple[str, str, str, str | None]:
    """What two presets must share to play on one engine: model source, device, backend, family."""
    return preset.model_source(), preset.model.device, preset.model.backend, preset.model.family


def start_client(preset: Preset, options: SessionOptions,
                 factory: Callable[[Preset], EngineClient] | None = None) -> EngineClient:
    """A started engine client for ``preset`` (blocking while the model loads), niced as the options say."""
    if factory is not None:
        client = factory(preset)
    else:
        client = make_client(options.engine, source=preset.model_source(), device=preset.model.device,
                             backend=preset.model.backend, token_file=options.engine_token_file,
                             threads=options.engine_threads, family=preset.model.family)
    try:
        client.start()
    except BaseException:
        close_client(client)
        raise
    pid = getattr(client, "pid", None)
    if pid is not None and options.engine_nice is not None:
        lower_priority(pid, options.engine_nice)
    return client


def close_client(client: EngineClient) -> None:
    try:
        client.close()
    except Exception:  # noqa: BLE001 - a half-started engine that fails to close must not hide why it failed
        log.exception("closing an engine client failed")
