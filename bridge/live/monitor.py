"""SessionMonitor: what a control panel shows about a running :class:`steerbridge.bridge.live.session.Session`.

The Qt panel (``gui/``) must stay a thin view: it polls this object from its
own timer and paints what it gets. Everything here is plain Python, so it is
testable without Qt and reusable by other front ends (a web page, a TUI).

Threads: the listeners registered here run on the threads that change the
state (OSC, MIDI, GUI) or on the engine client's event thread. They only store
floats and ints (``# NB:`` single stores, atomic under the GIL); the panel's
timer reads them. Nothing here runs on the audio thread, and nothing blocks.

Stopgaps, until :mod:`steerbridge.bridge.live.session` offers them (see the panel's report):
master volume (the player only has play/stop, both writing its master gain
target), last render time and OSC/MIDI activity (derived from listeners).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from steerbridge.bridge.control.state import Change
from steerbridge.bridge.engine_link.jobs import RenderResult

if TYPE_CHECKING:
    from steerbridge.bridge.engine_link.client import EngineClient
    from steerbridge.bridge.live.session import Session
    from steerbridge.bridge.presets.model import Knob

__all__ = ["SessionMonitor", "LoopView", "EngineView", "list_outputs", "KNOB_HEARD", "KNOB_PENDING", "KNOB_IDLE"]

KNOB_HEARD, KNOB_PENDING, KNOB_IDLE = "heard", "pending", "idle"
_SAME = 1e-9


@dataclass(frozen=True)
class LoopView:
    """The loudest voice playing now, for a waveform display."""

    ident: int  # changes when another loop becomes the loudest (cache a drawing on it)
    audio: np.ndarray  # [channels, frames] float32 at ``rate`` (a view: do not write)
    rate: int
    position: float  # playhead, 0..1 of the loop
    exact: bool  # the exact render for the knobs, not a stop of the crossfade grid
    voices: int  # loops audible in the mix


@dataclass(frozen=True)
class EngineView:
    model: str
    device: str
    alive: bool
    detail: str  # sample rate, layers: empty until the model has loaded
    last_render_s: float | None
    renders: int
    underruns: int
    xruns: int
    queued: int
    down: str = "stopped"  # what a dead engine is called: a remote one is "disconnected"


class SessionMonitor:
    """Watches one session; call :meth:`close` when the panel lets it go."""

    def __init__(self, session: Session, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.session, self._clock = session, clock
        self._activity: dict[str, float] = {}
        self._last_render_s: float | None = None
        self._renders = 0
        self._volume = 1.0
        self._client: EngineClient | None = None
        self._remove_client: Callable[[], None] | None = None
        self._remove_state = session.state.add_listener(self._on_change)

    def close(self) -> None:
        self._remove_state()
        if self._remove_client is not None:
            self._remove_client()
            self._remove_client = None

    # ------------------------------------------------------------------ listeners (any thread)
    def _on_change(self, change: Change) -> None:
        if change.source:
            self._activity[change.source] = self._clock()  # NB: one dict store, atomic under the GIL
        if change.kind == "playing" and change.value and self.session.player is not None:
            # The session's own listener (registered earlier, so called first)
            # has just set the player's master target to 1: put the volume back.
            self._apply_volume()

    def _on_engine(self, event: object) -> None:
        if isinstance(event, RenderResult):
            self._last_render_s = event.render_s  # NB: single stores
            self._renders += 1

    # ------------------------------------------------------------------ polled by the panel
    def poll(self) -> None:
        """Follow a session whose engine client appeared or was replaced since the last poll."""
        client = self.session.client
        if client is not self._client:
            if self._remove_client is not None:
                self._remove_client()
            self._client = client
            self._remove_client = client.add_listener(self._on_engine) if client is not None else None

    def seconds_since(self, source: str) -> float:
        """Seconds since ``source`` ("osc", "midi", "gui", ...) last changed the state (inf: never)."""
        t = self._activity.get(source)
        return math.inf if t is None else self._clock() - t

    def knob_status(self) -> dict[str, str]:
        """Per knob: ``heard`` when every loop the player is mixing sits at the knob's
        alpha (its exact render or a stop right on it), ``pending`` while the mix
        is a crossfade standing in for it, ``idle`` before any loop exists."""
        snap = self.session.state.snapshot()
        player = self.session.player
        targets = player.targets() if player is not None else {}
        knobs = snap.preset.knobs
        if not targets:
            return {k.name: KNOB_IDLE for k in knobs}
        keys = [loop.key for loop in targets]
        out = {}
        for i, knob in enumerate(knobs):
            want = snap.knobs[knob.name].alpha
            got = [_key_alpha(knob, key, i) for key in keys]
            same = all(a is not None and abs(a - want) <= _SAME * max(1.0, abs(want)) for a in got)
            out[knob.name] = KNOB_HEARD if same else KNOB_PENDING
        return out

    def loop_view(self) -> LoopView | None:
        player = self.session.player
        if player is None:
            return None
        gains = {loop: g for loop, g in player.gains().items() if g > 1e-3}
        if not gains:
            return None
        loop = max(gains, key=gains.__getitem__)
        stats = player.stats()
        position = (stats.position_s / loop.seconds) % 1.0 if loop.seconds > 0 else 0.0
        exact = isinstance(loop.key, tuple) and any(isinstance(a, float) for a in loop.key)
        return LoopView(id(loop), loop.planar(), loop.rate, position, exact, len(gains))

    def stops_progress(self) -> tuple[int, int, bool]:
        """``(renders done, renders planned, busy)`` for the current state's pre-render plan."""
        scheduler = self.session.scheduler
        if scheduler is None:
            return 0, 0, False
        done, total = scheduler.progress()
        busy = not scheduler.wait_idle(timeout=0)
        return (done if busy else total), total, busy

    def engine(self) -> EngineView:
        s = self.session
        preset = s.state.snapshot().preset
        client = s.client
        status = client.status() if client is not None else None
        info = status.info if status is not None else None
        detail = f"{info.num_layers} layers · {info.sample_rate / 1000:g} kHz" if info is not None else ""
        pstats = s.player.stats() if s.player is not None else None
        remote = getattr(client, "address", None)  # a RemoteClient: the server's address is the device
        return EngineView(
            model=preset.model.source if preset.model.source in ("tiny", "demo") else preset.model_source(),
            device=remote or preset.model.device, down="disconnected" if remote else "stopped", alive=bool(status and status.alive), detail=detail,
            last_render_s=self._last_render_s, renders=self._renders,
            underruns=pstats.underruns if pstats else 0, xruns=s.sink.xruns if s.sink is not None else 0,
            queued=status.queued if status is not None else 0)

    # ------------------------------------------------------------------ master volume
    @property
    def volume(self) -> float:
        return self._volume

    def set_volume(self, gain: float) -> float:
        """Master volume 0..1 (linear gain), applied through the player's smoothed master gain."""
        self._volume = min(1.0, max(0.0, float(gain)))
        self._apply_volume()
        return self._volume

    def _apply_volume(self) -> None:
        player = self.session.player
        if player is not None:
            player.set_volume(self._volume)


def _key_alpha(knob: Knob, key: object, index: int) -> float | None:
    """The alpha a loop's key gives knob ``index``: ints are stop indices, floats exact alphas."""
    if not isinstance(key, tuple) or index >= len(key):
        return None
    item = key[index]
    if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
        stops = knob.stop_alphas()
        return stops[int(item)] if 0 <= int(item) < len(stops) else None
    return float(item) if isinstance(item, float) else None


def list_outputs() -> list[tuple[str, str]]:
    """``(spec, label)`` of every output the panel can offer: PortAudio devices, null, WAV files.

    Listing PortAudio devices may take a moment (it initialises PortAudio):
    call this off the GUI thread.
    """
    outputs = [("default", "default output")]
    try:
        from steerbridge.bridge.audio.portaudio import import_sounddevice, output_devices

        sd = import_sounddevice()
        outputs += [(name, f"{name} ({api})") for _, name, api in output_devices(sd)]
    except Exception:  # no PortAudio, no devices: the offline outputs still work
        pass
    outputs += [("null", "null (no audio)"), ("wav:out/loops", "WAV files: out/loops")]
    return outputs
