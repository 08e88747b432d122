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

Threads that call :meth:`Session.subscribe` listeners: the scheduler's (loops),
the engine client's (progress, worker deaths), the housekeeping thread
(status), the caller's (errors from OSC/MIDI). A GUI must hop to its own
thread (e.g. a Qt signal). Nothing here runs on the audio thread except
``LoopPlayer.process``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steerbridge.bridge.audio.player import LoopPlayer
from steerbridge.bridge.audio.sinks import Sink, open_sink
from steerbridge.bridge.audio.wavfile import slug
from steerbridge.bridge.control.state import Change, ControlState
from steerbridge.bridge.engine_link.client import EngineClient
from steerbridge.bridge.engine_link.factory import make_client
from steerbridge.bridge.engine_link.jobs import Progress, WorkerEvent
from steerbridge.bridge.live.autosave import Autosaver, default_autosave_path, restore
from steerbridge.bridge.live.cache import LoopCache
from steerbridge.bridge.live.events import SessionEvent, SessionStatus, collect_status
from steerbridge.bridge.live.progress import PrerenderProgress, lower_priority
from steerbridge.bridge.live.scheduler import LoopReady, RenderScheduler
from steerbridge.bridge.live.surfaces import ControlSurfaces, parse_host_port
from steerbridge.bridge.live.voicebank import VoiceBank
from steerbridge.bridge.presets.model import Preset, load_preset

__all__ = ["Session", "SessionOptions", "SessionEvent", "SessionStatus", "parse_host_port"]

log = logging.getLogger(__name__)
Listener = Callable[[SessionEvent], None]


@dataclass(frozen=True)
class SessionOptions:
    output: str = "default"  # "default" | device name or index | "wav:DIR" | "null"
    fallback: str = "null"  # where to play when the output cannot be opened
    blocksize: int = 256
    latency: float | str | None = None  # seconds, or PortAudio's "low"/"high"
    hostapi: str = "auto"  # "auto" (JACK when listed) | "jack" | part of a host API name
    osc: str | None = "127.0.0.1:9000"  # None: no OSC server
    osc_allow_remote: bool = False  # listening beyond loopback needs this AND osc_allowed
    osc_allowed: tuple[str, ...] = ()  # sender addresses or networks allowed when remote
    # Live-state autosave: None (off: library use, tests), "default" (beside the preset;
    # what `serve` uses) or a path.
    autosave: str | None = None
    autosave_every_s: float = 2.0
    midi: tuple[str, ...] | None = ()  # (): every input port + the virtual port; None: no MIDI
    engine: str = "worker"  # "worker" (spawned process) | "inprocess" (tests, tools) | "tcp://HOST:PORT"
    engine_token_file: str | None = None  # a remote engine's token (default: ~/.config/steerbridge/engine.token)
    cache_mb: float = 512.0
    grid: str = "full"  # scheduler grid: "full" | "near" | "none"
    grid_limit: int = 64
    swap: str = "boundary"  # new prompt/seed: "boundary" | "now"
    progress: bool = True  # tqdm bar on stderr while pre-rendering
    slots: int = 16  # player voices per scene (raised to fit 2**knobs corners)
    # The GIL is handed between threads every 5 ms by default, so a busy OSC
    # or scheduler thread can hold the audio callback off for a whole block;
    # 1 ms bounds that wait (None leaves the interpreter's setting alone).
    switch_interval_s: float | None = 0.001
    # Measured here: a rendering worker at the audio process's priority caused
    # ~200 xruns per 8 s on JACK (non-real-time); at nice 19, ~80. None: leave it.
    engine_nice: int | None = 19


class Session:
    """Everything `steerbridge serve` runs; :meth:`start` it, :meth:`close` it (or use ``with``)."""

    def __init__(self, preset: Preset | str | os.PathLike[str], *, options: SessionOptions = SessionOptions(),
                 client: EngineClient | None = None, say: Callable[[str], None] | None = None) -> None:
        self.preset = preset if isinstance(preset, Preset) else load_preset(preset)
        self.options = options
        self._say = say or (lambda msg: print(msg, file=sys.stderr))
        self._given_client = client
        self.client: EngineClient | None = client
        self.state = ControlState(self.preset)
        self.cache = LoopCache(max_mb=options.cache_mb)
        self.sink: Sink | None = None
        self.player: LoopPlayer | None = None
        self.bank: VoiceBank | None = None
        self.scheduler: RenderScheduler | None = None
        self.surfaces = ControlSurfaces(self.state, say=self._say)
        self._listeners: list[Listener] = []
        self._swap_next: str | None = None
        self._progress = PrerenderProgress(enabled=options.progress, on_tick=self._on_prerender_tick)
        self._stopping = threading.Event()
        self._housekeeper: threading.Thread | None = None
        self._mixer: threading.Thread | None = None
        self._mix_wake = threading.Event()
        self._mix_lock = threading.Lock()
        self._started = False
        self._remove_state_listener: Callable[[], None] | None = None
        self._autosaver: Autosaver | None = None
        self._remove_client_listener: Callable[[], None] | None = None

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
            slots = max(o.slots, 2 ** len(self.preset.knobs) + 8)
            self.player = LoopPlayer(rate=self.sink.rate, channels=self.sink.channels,
                                     max_block=max(8192, o.blocksize), slots=slots)
            self.bank = VoiceBank(rate=self.sink.rate, channels=self.sink.channels)
            self._mixer = threading.Thread(target=self._mix_loop, name="steerbridge-mixer", daemon=True)
            self._mixer.start()
            self._start_engine(self.preset)
            self._remove_state_listener = self.state.add_listener(self._on_change)
            self._start_autosave()
            self.surfaces.start(osc=o.osc, midi=o.midi, presets_dir=self.preset.base_dir,
                                on_preset=self.load_preset, allow_remote=o.osc_allow_remote,
                                allowed_senders=o.osc_allowed)
            if prerender:
                self.prerender(timeout=timeout)
            self.sink.start(self.player.process)
            self.state.set_playing(True, source="session")
            self._housekeeper = threading.Thread(target=self._housekeep, name="steerbridge-housekeeping",
                                                 daemon=True)
            self._housekeeper.start()
            self._emit(SessionEvent("status", self.status().summary()))
        except BaseException:
            self.close()
            raise
        return self

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

    def _start_engine(self, preset: Preset) -> None:
        if self.client is None:
            self.client = make_client(self.options.engine, source=preset.model_source(), device=preset.model.device,
                                      backend=preset.model.backend, token_file=self.options.engine_token_file)
            self._emit(SessionEvent("status", f"loading model {preset.model_source()!r} ..."))
            self.client.start()
            pid = getattr(self.client, "pid", None)
            if pid is not None and self.options.engine_nice is not None:
                lower_priority(pid, self.options.engine_nice)
        self._remove_client_listener = self.client.add_listener(self._on_engine_event)
        o = self.options
        self.scheduler = RenderScheduler(self.state, self.client, self.cache, on_loop=self._on_loop,
                                         on_error=lambda msg: self._error("render", msg),
                                         grid=o.grid, grid_limit=o.grid_limit)
        self.scheduler.start()

    def _stop_engine(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self._remove_client_listener is not None:
            self._remove_client_listener()
            self._remove_client_listener = None
        if self.client is not None and self.client is not self._given_client:
            self.client.close()
            self.client = None

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
        self._mix_wake.set()
        if self.sink is not None:
            self.sink.stop()
        for thread in (self._housekeeper, self._mixer):
            if thread is not None:
                thread.join(timeout=2)
        self._housekeeper = self._mixer = None
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
        """Switch preset; a different model source restarts the engine (blocking while it loads)."""
        new = preset if isinstance(preset, Preset) else load_preset(preset)
        engine_changed = ((new.model_source(), new.model.device, new.model.backend)
                          != (self.preset.model_source(), self.preset.model.device, self.preset.model.backend))
        if engine_changed and self._given_client is not None:
            raise ValueError(f"preset {new.path} needs model {new.model_source()!r}, but this session was given "
                             "an engine client for another model; start a new session for it")
        self.preset = new
        if engine_changed and self._started:
            self._stop_engine()
            self.state.load_preset(new, source="session")
            self._start_engine(new)
        else:
            self.state.load_preset(new, source="session")

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for progress/loop/error/status events; returns a remover."""
        self._listeners = [*self._listeners, listener]

        def remove() -> None:
            self._listeners = [x for x in self._listeners if x is not listener]

        return remove

    def status(self) -> SessionStatus:
        return collect_status(state=self.state, sink=self.sink, player=self.player, client=self.client,
                              scheduler=self.scheduler, cache_bytes=self.cache.stats().bytes,
                              osc=self.surfaces.osc_address, midi_ports=self.surfaces.midi_ports)

    def current_loop_audio(self) -> tuple[np.ndarray, int] | None:
        """``([channels, frames] float32, rate)`` of the loudest voice, for a waveform display."""
        loop = self.player.current_loop() if self.player is not None else None
        return None if loop is None else (loop.planar(), loop.rate)

    # ------------------------------------------------------------------ wiring
    def _on_change(self, change: Change) -> None:
        if change.kind == "knob":
            self._mix_wake.set()  # the mixer thread applies the newest state: a knob storm costs one update
        elif change.kind == "playing" and self.player is not None:
            (self.player.play if change.value else self.player.stop)()

    def _mix_loop(self) -> None:
        while True:
            self._mix_wake.wait()
            if self._stopping.is_set():
                return
            self._mix_wake.clear()  # cleared before reading the state: a change after this wakes us again
            try:
                self._update_mix()
            except ValueError as exc:  # e.g. a preset with more knobs than the player has slots
                self._error("mix", str(exc))

    def _update_mix(self, *, swap: str = "boundary") -> None:
        # Bank and snapshot are read under the lock, so whichever thread (mixer
        # or loop delivery) applies gains last applies the newest scene and
        # state; an older scene applied late would start that scene again.
        with self._mix_lock:
            bank, player = self.bank.latest if self.bank else None, self.player
            if bank is None or player is None:
                return
            snap = self.state.snapshot()
            gains = self.bank.gains(bank, snap.preset.knobs, snap.values(), snap.alphas())
            if gains:
                player.set_voices(gains, scene=bank.scene, swap="now" if swap == "now" else "boundary")

    def _on_loop(self, ready: LoopReady) -> None:
        assert self.bank is not None and self.sink is not None
        _, loop, new_scene = self.bank.add(ready)
        swap = (self._swap_next or self.options.swap) if new_scene else "boundary"
        if new_scene:
            self._swap_next = None
        self._update_mix(swap=swap)
        kind = "exact" if ready.exact else "stop"
        path: Path | None = None
        try:
            path = self.sink.loop_ready(loop, name=_loop_name(self.state, ready))
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
        sink.start(self.player.process)
        self.sink = sink
        self._error("audio", f"output device lost ({lost.describe()}); playing to {sink.describe()} now. "
                             "Reconnect it and restart serve (or pick it again in the panel).")


def _loop_name(state: ControlState, ready: LoopReady) -> str:
    # The scheduler only delivers loops of the scene it plans for, which is the
    # state's scene unless the prompt changed this very moment.
    snap = state.snapshot()
    prompt, seed = snap.prompt, snap.seed
    knobs = "_".join(f"{slug(name, limit=16)}{alpha:+.3f}" for name, alpha in ready.alphas.items())
    return f"{slug(prompt)}_s{seed}" + (f"_{knobs}" if knobs else "")
