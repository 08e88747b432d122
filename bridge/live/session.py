"""Session: the `serve` runtime, also the API the Qt panel drives.

Wiring (docs/architecture.md has the picture and every thread)::

    OSC / MIDI / panel -> ControlState -> RenderScheduler -> EngineClient (worker process)
                              |                 | LoopReady (scheduler thread)
                              v                 v
                  knob moves: player gains <- VoiceBank (soxr, outside the callback)
                                   |
                            LoopPlayer.process <- sink clock (PortAudio / WAV / null)

A knob move wakes the session's mixer thread, which sets the player's gains
from the newest state (equal-power between the pre-rendered stops around it) and the scheduler
renders the exact loop, which takes over when it lands. A new prompt or seed
plays when its first loop lands, at the loop boundary (or at once: ``now=``).

The mixer thread lives in :mod:`steerbridge.bridge.live.mixer`.
Threads that call :meth:`Session.subscribe` listeners: the scheduler's (loops),
the engine client's (progress, worker deaths), the housekeeping thread
(status), the caller's, ``steerbridge-preset-load``'s or ``steerbridge-midi-save``'s
(errors from OSC/MIDI). A GUI must hop to its own
thread (e.g. a Qt signal). Nothing here runs on the audio thread except
``LoopPlayer.process``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from steerbridge.bridge.audio.guard import CallbackGuard
from steerbridge.bridge.audio.player import LoopPlayer
from steerbridge.bridge.audio.sinks import Sink, open_sink
from steerbridge.bridge.control.state import Change, ControlState
from steerbridge.bridge.engine_link.client import EngineClient
from steerbridge.bridge.engine_link.jobs import Progress, WorkerEvent
from steerbridge.bridge.live.autosave import Autosaver, default_autosave_path, restore
from steerbridge.bridge.live.cache import LoopCache
from steerbridge.bridge.live.events import SessionEvent, SessionStatus, collect_status, loop_name
from steerbridge.bridge.live.lifecycle import PresetSwitcher, close_client, engine_key, start_client
from steerbridge.bridge.live.mixer import Mixer
from steerbridge.bridge.live.options import SessionOptions
from steerbridge.bridge.live.progress import PrerenderProgress
from steerbridge.bridge.live.scheduler import LoopReady, RenderScheduler
from steerbridge.bridge.live.surfaces import ControlSurfaces, parse_host_port
from steerbridge.bridge.live.voicebank import VoiceBank
from steerbridge.bridge.presets.model import Preset, load_preset

if TYPE_CHECKING:
    from steerbridge.bridge.live.linkplay import LinkPlay

__all__ = ["Session", "SessionOptions", "SessionEvent", "SessionStatus", "parse_host_port"]

log = logging.getLogger(__name__)
Listener = Callable[[SessionEvent], None]


class Session:
    """Everything `steerbridge serve` runs; :meth:`start` it, :meth:`close` it (or use ``with``)."""

    def __init__(self, preset: Preset | str | os.PathLike[str], *, options: SessionOptions = SessionOptions(),
                 client: EngineClient | None = None, say: Callable[[str], None] | None = None,
                 engine_factory: Callable[[Preset], EngineClient] | None = None) -> None:
        self.preset = preset if isinstance(preset, Preset) else load_preset(preset)
        self.options = options
        self._say = say or (lambda msg: print(msg, file=sys.stderr))
        self._given_client = client
        self.client: EngineClient | None = client
        self._engine_factory = engine_factory  # an unstarted client for a preset (default: options.engine)
        self._switcher: PresetSwitcher[Preset, EngineClient] | None = None
        self.engine_phase: tuple[str, str] = ("idle", "")  # loading | ready | error, and the model or reason
        self.state = ControlState(self.preset)
        self.cache = LoopCache(max_mb=options.cache_mb)
        self.sink: Sink | None = None
        self.player: LoopPlayer | None = None
        self.callback: CallbackGuard | None = None  # what the sink's clock calls: the player, guarded
        self.bank: VoiceBank | None = None
        self.scheduler: RenderScheduler | None = None
        self.surfaces = ControlSurfaces(self.state, say=self._say, on_error=self._error)
        self._listeners: list[Listener] = []
        self._swap_next: str | None = None
        self._progress = PrerenderProgress(enabled=options.progress, on_tick=self._on_prerender_tick)
        self._stopping = threading.Event()
        self._housekeeper: threading.Thread | None = None
        self.mixer: Mixer | None = None
        self._started = False
        self._remove_state_listener: Callable[[], None] | None = None
        self._autosaver: Autosaver | None = None
        self._remove_client_listener: Callable[[], None] | None = None
        self.link: LinkPlay | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, prerender: bool = True, timeout: float | None = None) -> Session:
        """Open the output, load the model, serve OSC/MIDI, pre-render (blocking), play."""
        if self._started:
            raise RuntimeError("this session is already started; close() it and make a new one")
        self._started = True
        o = self.options
        if o.switch_interval_s is not None:
            sys.setswitchinterval(o.switch_interval_s)
        try:
            self.sink = open_sink(o.output, blocksize=o.blocksize, latency=o.latency, hostapi=o.hostapi,
                                  fallback=o.fallback, log=self._say)
            # Voices per scene do not grow with the knob count (VoiceBank asks for at most 2 * MAX_AXES).
            self.player = LoopPlayer(rate=self.sink.rate, channels=self.sink.channels,
                                     max_block=max(8192, o.blocksize), slots=o.slots)
            self.callback = CallbackGuard(self.player.process)
            self.bank = VoiceBank(rate=self.sink.rate, channels=self.sink.channels)
            if o.link if o.link is not None else self.preset.scene.link:
                from steerbridge.bridge.live.linkplay import start_link  # before the engine: renders are in bars

                self.link = start_link(self)
                self.callback = CallbackGuard(self._audio_process())  # the guard wraps the bar sync too
            self.mixer = Mixer(self.state, self.bank, self.player, on_error=lambda msg: self._error("mix", msg))
            self._start_engine(self.preset)
            self._switcher = PresetSwitcher(engine_key=engine_key, current_key=lambda: engine_key(self.preset),
                                            make=self._make_client, apply=self._switch_to, close=close_client,
                                            on_phase=self._engine_phase)
            self._remove_state_listener = self.state.add_listener(self._on_change)
            self._start_autosave()
            self.surfaces.start(osc=o.osc, midi=o.midi, presets_dir=self.preset.base_dir,
                                on_preset=self.load_preset, allow_remote=o.osc_allow_remote,
                                allowed_senders=o.osc_allowed)
            if prerender:
                self.prerender(timeout=timeout)
            self.sink.start(self.callback)
            self.state.set_playing(True, source="session")
            if self.link is not None:
                self.link.follow_transport()
            self._housekeeper = threading.Thread(target=self._housekeep, name="steerbridge-housekeeping",
                                                 daemon=True)
            self._housekeeper.start()
            self._emit(SessionEvent("status", self.status().summary()))
        except BaseException:
            self.close()
            raise
        return self

    def _audio_process(self) -> Callable[[np.ndarray], None]:
        """What the sink's clock calls: the player, or the Link bar sync that leads it."""
        assert self.player is not None
        return self.link.sync.process if self.link is not None else self.player.process

    def _start_autosave(self) -> None:
        """Bring back the last live state (knobs, scene), then keep saving it every few seconds."""
        path = self.options.autosave
        if path is None:
            return
        target = default_autosave_path(self.preset.path) if path == "default" else path
        restored = restore(self.state, target)  # before pre-rendering: render what will be heard
        if restored is not None:
            self._say(f"restored the live state saved at {target}")
        self._autosaver = Autosaver(self.state, target, every_s=self.options.autosave_every_s).start()

    def _make_client(self, preset: Preset) -> EngineClient:
        """Start an engine for ``preset`` (blocking: the model loads); at start-up or on the switcher's thread."""
        self._emit(SessionEvent("status", f"loading model {preset.model_source()!r} ..."))
        return start_client(preset, self.options, self._engine_factory)

    def _start_engine(self, preset: Preset) -> None:
        if self.client is None:
            self._engine_phase("loading", preset.model_source())
            self.client = self._make_client(preset)
        self._engine_phase("ready", preset.model_source())
        self._attach_engine()

    def _attach_engine(self) -> None:
        assert self.client is not None
        self._remove_client_listener = self.client.add_listener(self._on_engine_event)
        o = self.options
        self.scheduler = RenderScheduler(self.state, self.client, self.cache, on_loop=self._on_loop,
                                         on_error=lambda msg: self._error("render", msg),
                                         grid=o.grid, grid_limit=o.grid_limit)
        self.scheduler.start()

    def _stop_engine(self) -> None:
        if self._switcher is not None:
            self._switcher.close()
            self._switcher = None
        self._detach_engine()
        if self.client is not None and self.client is not self._given_client:
            self.client.close()
            self.client = None

    def _detach_engine(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self._remove_client_listener is not None:
            self._remove_client_listener()
            self._remove_client_listener = None

    def _switch_to(self, preset: Preset, client: EngineClient | None) -> None:
        """The switcher's commit: the new preset, on a new engine (``client``) or the current one."""
        self.preset = preset
        if client is None:
            self.state.load_preset(preset, source="session")
            return
        old = self.client
        self._detach_engine()  # the player keeps playing the old scene until the new one's first loop lands
        self.client = client
        self.state.load_preset(preset, source="session")
        self._attach_engine()
        if old is not None and old is not self._given_client:
            old.close()

    def _engine_phase(self, phase: str, detail: str) -> None:
        self.engine_phase = (phase, detail)
        self.surfaces.notify_engine(phase, detail)
        if phase == "error":
            self._error("engine", f"the new model did not load ({detail}); the old one keeps playing")
        else:
            self._emit(SessionEvent("status", f"engine {phase}: {detail}"))

    def prerender(self, *, timeout: float | None = None) -> bool:
        """Block until the plan for the current state is rendered; a tqdm bar shows it."""
        assert self.scheduler is not None, "start() the session first"
        total = len(self.scheduler.plan(self.state.snapshot()))
        with self._progress.run(total) as progress:
            return progress.wait(self.scheduler, timeout)

    def _on_prerender_tick(self, done: int, total: int) -> None:
        self.surfaces.notify_progress(done, total, "prerender")
        self._emit(SessionEvent("progress", "prerender", done=done, total=total))

    def close(self) -> None:
        """Stop audio first (no callback may outlive the player), then everything else. Idempotent."""
        self._stopping.set()
        if self.sink is not None:
            self.sink.stop()
        if self.mixer is not None:
            self.mixer.close()
            self.mixer = None
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=2)
            self._housekeeper = None
        if self.link is not None:
            self.link.close()
            self.link = None
        if self._remove_state_listener is not None:
            self._remove_state_listener()
            self._remove_state_listener = None
        if self._autosaver is not None:
            self._autosaver.stop()  # writes one last save
            self._autosaver = None
        self.surfaces.close()
        self._stop_engine()
        if self.player is not None:
            self.player.reap(force=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ control API (GUI, CLI, tests)
    def set_knob(self, name: str, value01: float) -> float:
        return self.state.set_value(name, value01, source="session")

    def set_alpha(self, name: str, alpha: float) -> float:
        return self.state.set_alpha(name, alpha, source="session")

    def set_prompt(self, prompt: str, *, now: bool = False) -> None:
        """New prompt: plays when its first loop lands, at the loop boundary or at once (``now``)."""
        self._swap_next = "now" if now else None
        self.state.set_prompt(prompt, source="session")

    def set_seed(self, seed: int, *, now: bool = False) -> None:
        self._swap_next = "now" if now else None
        self.state.set_seed(seed, source="session")

    def play(self) -> None:
        self.state.set_playing(True, source="session")

    def stop(self) -> None:
        self.state.set_playing(False, source="session")

    def load_preset(self, preset: Preset | str | os.PathLike[str]) -> None:
        """Switch preset without blocking: on the same model at once; a different model loads in the
        background while the old one keeps playing (:attr:`engine_phase`: loading -> ready, or error).
        A newer request supersedes one still loading."""
        new = preset if isinstance(preset, Preset) else load_preset(preset)
        if engine_key(new) != engine_key(self.preset) and self._given_client is not None:
            raise ValueError(f"preset {new.path} needs model {new.model_source()!r}, but this session was given "
                             "an engine client for another model; start a new session for it")
        if self._switcher is not None:
            self._switcher.request(new)
        else:  # not started (or closed): nothing runs yet
            self.preset = new
            self.state.load_preset(new, source="session")

    def wait_preset(self, timeout: float | None = None) -> bool:
        """Wait until preset requests (and model loads) in flight are done; False on timeout."""
        return self._switcher is None or self._switcher.wait_idle(timeout)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for progress/loop/error/status events; returns a remover."""
        self._listeners = [*self._listeners, listener]

        def remove() -> None:
            self._listeners = [x for x in self._listeners if x is not listener]

        return remove

    def status(self) -> SessionStatus:
        return collect_status(state=self.state, sink=self.sink, player=self.player, client=self.client,
                              scheduler=self.scheduler, cache_bytes=self.cache.stats().bytes,
                              osc=self.surfaces.osc_address, midi_ports=self.surfaces.midi_ports,
                              callback_errors=self.callback.errors if self.callback is not None else 0)

    def current_loop_audio(self) -> tuple[np.ndarray, int] | None:
        """``([channels, frames] float32, rate)`` of the loudest voice, for a waveform display."""
        loop = self.player.current_loop() if self.player is not None else None
        return None if loop is None else (loop.planar(), loop.rate)

    # ------------------------------------------------------------------ wiring
    def _on_change(self, change: Change) -> None:
        if change.kind == "knob" and self.mixer is not None:
            self.mixer.wake()  # the mixer thread applies the newest state: a knob storm costs one update
        elif change.kind == "playing" and self.player is not None and self.link is None:  # Link: on the bar
            (self.player.play if change.value else self.player.stop)()

    def _on_loop(self, ready: LoopReady) -> None:
        assert self.bank is not None and self.sink is not None
        _, loop, new_scene = self.bank.add(ready, self.state.snapshot().preset.knobs)
        swap = (self._swap_next or (self.link.swap() if self.link else None) or self.options.swap) \
            if new_scene else "boundary"
        if new_scene:
            self._swap_next = None
        if self.mixer is not None:
            self.mixer.update(swap=swap)
        kind = "exact" if ready.exact else "stop"
        path: Path | None = None
        try:
            path = self.sink.loop_ready(loop, name=loop_name(self.state, ready))
        except OSError as exc:
            self._error("wav", f"could not write the loop WAV: {exc}; check the --output wav:DIR folder")
        if path is not None:
            self.surfaces.notify_loop(path, kind)
        self._progress.tick()
        self._emit(SessionEvent("loop", f"{kind} loop ready", path=path, loop_kind=kind))

    def _on_engine_event(self, event: object) -> None:
        if isinstance(event, Progress):
            self.surfaces.notify_progress(event.done, event.total, "render")
            self._emit(SessionEvent("progress", "render", done=event.done, total=event.total))
        elif isinstance(event, WorkerEvent) and event.kind in ("died", "failed", "disconnected"):
            self.surfaces.notify_engine("disconnected")  # audio goes on from the cached loops
            self._error("engine", event.detail)
        elif isinstance(event, WorkerEvent) and event.kind in ("restarted", "reconnected"):
            self.surfaces.notify_engine("connected")
            self._emit(SessionEvent("status", f"engine {event.kind}: {event.detail}"))

    def _error(self, kind: str, message: str) -> None:
        self.surfaces.notify_error(kind, message)
        self._emit(SessionEvent("error", message, source=kind))

    def _emit(self, event: SessionEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("session listener %r failed on %s", listener, event.kind)

    def _housekeep(self) -> None:
        """Release retired loops and report underrun/xrun changes, four times a second."""
        last: tuple[int, int] = (-1, -1)
        while not self._stopping.wait(0.25):
            if self.player is None or self.sink is None:
                continue
            self.player.reap()
            for message in self.callback.take_reports() if self.callback is not None else ():
                self._error("callback", message)  # once per kind of fault; the stream plays on
            if getattr(self.sink, "lost", False):
                self._fall_back()
            now = (self.player.stats().underruns, self.sink.xruns)
            if now != last and last != (-1, -1):
                self._emit(SessionEvent("status", f"underruns {now[0]}, xruns {now[1]}"))
            last = now


    def _fall_back(self) -> None:
        """The output device went away mid-set: keep the session going on the fallback sink."""
        lost, o = self.sink, self.options
        assert lost is not None and self.player is not None
        lost.stop()
        sink = open_sink(o.fallback, blocksize=o.blocksize, rate=self.player.rate, log=self._say)
        sink.start(self.callback or self.player.process)
        self.sink = sink
        self._error("audio", f"output device lost ({lost.describe()}); playing to {sink.describe()} now. "
                             "Reconnect it and restart serve (or pick it again in the panel).")
