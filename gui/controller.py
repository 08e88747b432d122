"""SessionController: owns the running :class:`steerbridge.bridge.live.session.Session` for the panel.

Who runs what (the panel must never block, see docs/architecture.md):

- **The GUI thread** creates sessions (cheap: a preset parse and a state
  object), makes every *control* call (knob, prompt, play; each is a state
  store plus listener calls that only wake other threads), and drains the
  inbox on a 30 Hz timer.
- **One lifecycle thread** does everything that can take seconds, in order:
  closing the old session, starting the engine client (model load; a
  spawned worker by default), ``Session.start`` (opening the output and
  pre-rendering the alpha stops). Serialising them means an output switch
  never closes a session that is still starting.
- **Session listeners** run on the session's threads (scheduler, engine
  client, OSC, MIDI). They only ``put`` into a ``queue.SimpleQueue``; the
  timer turns those into Qt signals on the GUI thread. No Qt call ever
  happens off the GUI thread.

The engine client belongs to the controller, not to the session, so that a
new output (or a restart) reuses the loaded model. A preset for another
model gets a new client.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from steerbridge.bridge.control.state import Change
from steerbridge.bridge.engine_link.client import EngineClient
from steerbridge.bridge.engine_link.factory import make_client
from steerbridge.bridge.live.monitor import SessionMonitor
from steerbridge.bridge.live.session import Session, SessionEvent, SessionOptions
from steerbridge.bridge.presets.model import Preset, load_preset, save_preset
from steerbridge.gui.presetfile import preset_from_state, with_bindings_of

__all__ = ["SessionController", "ClientFactory"]

log = logging.getLogger(__name__)
ClientFactory = Callable[[Preset], EngineClient]
_Task = Callable[[], None]


def _model_of(preset: Preset) -> tuple[str, str, str | None]:
    """What the panel's engine client loaded for ``preset``: its model folder, device and family."""
    return preset.model_source(), preset.model.device, preset.model.family


class SessionController(QObject):
    sessionChanged = pyqtSignal()  # a new Session is bound: rebuild what depends on the preset
    eventReceived = pyqtSignal(object)  # a SessionEvent, delivered on the GUI thread
    lifecycle = pyqtSignal(str, str)  # (starting | running | failed, message)
    tick = pyqtSignal()  # the 30 Hz poll: read the session's state now

    def __init__(self, *, options: SessionOptions, client_factory: ClientFactory | None = None,
                 poll_ms: int = 33, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.options = options
        self._client_factory = client_factory or self._default_client
        self.session: Session | None = None
        self.monitor: SessionMonitor | None = None
        self.baseline: Preset | None = None  # the preset as last loaded or saved
        self.phase = "idle"  # idle | starting | running | failed
        self._client: EngineClient | None = None
        self._generation = 0  # messages from a replaced session are dropped
        self._inbox: queue.SimpleQueue[tuple[str, int, object]] = queue.SimpleQueue()
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._run_tasks, name="steerbridge-gui-lifecycle", daemon=True)
        self._worker.start()
        self._unlisten: Callable[[], None] | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._poll)
        self._timer.start()

    # ------------------------------------------------------------------ presets and lifecycle
    def open(self, preset: Preset | str | Path) -> None:
        """Play ``preset``: the first one starts everything; later ones switch the running session."""
        new = preset if isinstance(preset, Preset) else load_preset(preset)
        old = self.session
        same_engine = old is not None and self._client is not None and (
            _model_of(new) == _model_of(old.preset))
        self.baseline = new
        if same_engine and self.phase != "failed":
            old.load_preset(new)  # a state change: the scheduler re-plans, nothing blocks here
            return
        self._launch(new, reuse_client=False)

    def set_output(self, spec: str) -> None:
        """Play to another output: a new session on the same engine (the model stays loaded)."""
        if spec == self.options.output or self.session is None:
            self.options = replace(self.options, output=spec)
            return
        self.options = replace(self.options, output=spec)
        self._launch(self.current_preset(), reuse_client=self.phase == "running")

    def set_link(self, on: bool) -> None:
        """Join or leave Ableton Link: a new session on the same engine (loop lengths change with it)."""
        self.options = replace(self.options, link=bool(on))
        if self.session is not None:
            self._launch(self.current_preset(), reuse_client=self.phase == "running")

    def link_on(self) -> bool:
        """Whether the session plays with Link (its options, else its preset, say so)."""
        s = self.session
        if self.options.link is not None:
            return self.options.link
        return s is not None and s.state.snapshot().preset.scene.link

    def _launch(self, preset: Preset, *, reuse_client: bool) -> None:
        old_session, old_monitor, old_client = self.session, self.monitor, self._client
        client = old_client if reuse_client and old_client is not None else self._client_factory(preset)
        fresh = client is not old_client
        session = Session(preset, options=self.options, client=client, say=lambda msg: self._post("say", msg))
        self._generation += 1
        gen = self._generation
        session.subscribe(lambda event: self._inbox.put(("event", gen, event)))
        if self._unlisten is not None:
            self._unlisten()
        self._unlisten = session.state.add_listener(lambda change: self._on_change(gen, change))
        if old_monitor is not None:
            old_monitor.close()
        self.session, self.monitor, self._client = session, SessionMonitor(session), client
        self._set_phase("starting", f"loading {preset.model_source()} and pre-rendering…")
        self.sessionChanged.emit()

        def start() -> None:
            try:
                if old_session is not None:
                    old_session.close()
                if fresh and old_client is not None:
                    old_client.close()
            except Exception:  # a client that never started may not close cleanly: go on regardless
                log.exception("closing the previous session failed")
            try:
                if fresh:
                    client.start()
                session.start(prerender=True)
            except BaseException as exc:  # noqa: BLE001 - every failure must reach the panel, not kill the thread
                log.exception("session start failed")
                self._inbox.put(("failed", gen, _message(exc)))
            else:
                self._inbox.put(("running", gen, f"ready: playing to {session.status().output}"))

        self._tasks.put(start)

    def close(self, *, timeout: float = 30.0) -> None:
        """Stop everything (blocking: call at exit)."""
        self._timer.stop()
        session, client = self.session, self._client
        if self.monitor is not None:
            self.monitor.close()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

        def stop() -> None:
            if session is not None:
                session.close()
            if client is not None:
                client.close()

        self._tasks.put(stop)
        self._tasks.put(None)
        self._worker.join(timeout=timeout)
        self.session = self.monitor = self._client = None

    # ------------------------------------------------------------------ control (GUI thread, never blocks)
    def set_knob(self, name: str, value01: float) -> None:
        if self.session is not None:
            self.session.state.set_value(name, value01, source="gui")

    def arm_learn(self, name: str | None) -> None:
        if self.session is not None:
            self.session.state.arm_learn(name, source="gui")

    def set_scene(self, prompt: str, seed: int, seconds: float) -> None:
        """Stage-by-stage so the error names the bad field; a changed scene is rendered and swapped in."""
        s = self.session
        if s is None:
            return
        snap = s.state.snapshot()
        if seconds != snap.seconds:
            s.state.set_seconds(seconds, source="gui")
        if seed != snap.seed:
            s.state.set_seed(seed, source="gui")
        if prompt != snap.prompt:
            s.state.set_prompt(prompt, source="gui")

    def set_playing(self, playing: bool) -> None:
        if self.session is not None:
            self.session.state.set_playing(playing, source="gui")

    def set_volume(self, gain: float) -> None:
        if self.monitor is not None:
            self.monitor.set_volume(gain)

    # ------------------------------------------------------------------ preset files
    def current_preset(self) -> Preset:
        assert self.session is not None, "open() a preset first"
        return preset_from_state(self.session.state.snapshot())

    def is_dirty(self) -> bool:
        return self.session is not None and self.baseline is not None and self.current_preset() != self.baseline

    def save(self, path: str | Path | None = None) -> Preset:
        """Write the current sound as a preset (atomically); it becomes the session's preset."""
        current = self.current_preset()
        target = Path(path) if path is not None else current.path
        if target is None:
            raise ValueError("this preset has no file yet; use Save As")
        saved = save_preset(current, target)
        self.baseline = saved
        if self.session is not None:
            self.session.load_preset(saved)  # defaults = what was saved; the path is the new file
        return saved

    # ------------------------------------------------------------------ plumbing
    def _default_client(self, preset: Preset) -> EngineClient:
        return make_client(self.options.engine, source=preset.model_source(), device=preset.model.device,
                           token_file=self.options.engine_token_file, family=preset.model.family)

    def _on_change(self, gen: int, change: Change) -> None:
        # Any thread. Only a MIDI learn matters here: it has already written
        # the binding into the preset file, so it is not an unsaved change.
        if change.kind == "preset" and change.source == "midi":
            self._inbox.put(("learned", gen, change.value))

    def _post(self, kind: str, payload: object) -> None:
        self._inbox.put((kind, self._generation, payload))

    def _run_tasks(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                task()
            except Exception:  # keep the lifecycle thread alive for the next task
                log.exception("panel lifecycle task failed")

    def _set_phase(self, phase: str, message: str) -> None:
        self.phase = phase
        self.lifecycle.emit(phase, message)

    def _poll(self) -> None:
        while True:
            try:
                kind, gen, payload = self._inbox.get_nowait()
            except queue.Empty:
                break
            if gen != self._generation:
                continue  # from a session that has been replaced
            if kind == "event":
                self.eventReceived.emit(payload)
            elif kind == "say":
                self.eventReceived.emit(SessionEvent("status", str(payload)))
            elif kind == "learned" and isinstance(payload, Preset) and payload.path is not None \
                    and self.baseline is not None:
                self.baseline = with_bindings_of(self.baseline, payload)
            elif kind in ("running", "failed"):
                self._set_phase(kind, str(payload))
        if self.monitor is not None:
            self.monitor.poll()
        self.tick.emit()


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 600 else text[:600] + "…"
