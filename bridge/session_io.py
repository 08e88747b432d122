"""The session's edges: events and status it reports, its OSC/MIDI surfaces, its progress bar.

Kept apart from :mod:`bridge.session` so that module reads as the wiring
alone. Nothing here touches audio.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from bridge.presets import Preset
from bridge.scheduler import RenderScheduler
from bridge.state import ControlState

if TYPE_CHECKING:
    from bridge.osc import OscServer
    from bridge.session import Session

__all__ = ["SessionEvent", "SessionStatus", "ControlSurfaces", "PrerenderProgress", "parse_host_port",
           "lower_priority"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionEvent:
    """``kind``: progress | loop | error | status. Progress: ``done``/``total`` with
    ``message`` "prerender" (loops) or "render" (diffusion steps of one render)."""

    kind: str
    message: str = ""
    done: int = 0
    total: int = 0
    path: Path | None = None  # the WAV written for a loop (wav:DIR output)
    loop_kind: str | None = None  # "exact" | "stop"
    source: str | None = None  # for errors: render | engine | osc | midi | wav


@dataclass(frozen=True)
class SessionStatus:
    output: str
    rate: int
    blocksize: int
    latency_ms: float
    playing: bool
    prompt: str
    seed: int
    knobs: dict[str, float]  # alpha per knob
    blocks: int
    underruns: int
    xruns: int
    engine_alive: bool
    engine_restarts: int
    renders_queued: int
    renders_done: int
    cache_mb: float
    osc: str | None
    midi_ports: tuple[str, ...]

    @classmethod
    def collect(cls, s: Session) -> SessionStatus:
        snap = s.state.snapshot()
        sink, player = s.sink, s.player
        pstats = player.stats() if player is not None else None
        cstatus = s.client.status() if s.client is not None else None
        return cls(
            output=sink.describe() if sink else "not started", rate=sink.rate if sink else 0,
            blocksize=sink.blocksize if sink else 0, latency_ms=round(sink.latency_s * 1000, 2) if sink else 0.0,
            playing=snap.playing, prompt=snap.prompt, seed=snap.seed, knobs=snap.alphas(),
            blocks=pstats.blocks if pstats else 0, underruns=pstats.underruns if pstats else 0,
            xruns=sink.xruns if sink else 0,
            engine_alive=bool(cstatus and cstatus.alive), engine_restarts=cstatus.restarts if cstatus else 0,
            renders_queued=cstatus.queued if cstatus else 0,
            renders_done=s.scheduler.stats().completed if s.scheduler else 0,
            cache_mb=round(s.cache.stats().bytes / 1e6, 1), osc=s.surfaces.osc_address,
            midi_ports=s.surfaces.midi_ports)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        knobs = ", ".join(f"{k}={a:+.2f}" for k, a in self.knobs.items()) or "no knobs"
        return (f"playing to {self.output}; OSC {self.osc or 'off'}; MIDI {', '.join(self.midi_ports) or 'off'}; "
                f"{knobs}; underruns {self.underruns}, xruns {self.xruns}")


def parse_host_port(text: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"`` or ``"PORT"`` -> (host, port)."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number < 65536:
        raise ValueError(f"OSC address {text!r}: expected HOST:PORT with a port 0..65535, e.g. 127.0.0.1:9000")
    return host or default_host, number


def lower_priority(pid: int, nice: int) -> None:
    """Renice every thread of process ``pid`` (Linux nice is per thread; threads made
    later inherit it). Best effort: elsewhere, or without permission, nothing happens."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:
            log.debug("could not renice thread %d of pid %d: %s", tid, pid, exc)


class ControlSurfaces:
    """The OSC server and MIDI inputs of a session (either may be off)."""

    def __init__(self, state: ControlState, *, say: Callable[[str], None]) -> None:
        self.state, self._say = state, say
        self.osc: OscServer | None = None
        self._midi_input: Any = None
        self._midi_router: Any = None
        self.midi_ports: tuple[str, ...] = ()

    @property
    def osc_address(self) -> str | None:
        return None if self.osc is None else "{}:{}".format(*self.osc.address)

    def start(self, *, osc: str | None, midi: Sequence[str] | None, presets_dir: Path,
              on_preset: Callable[[Preset], None], allow_remote: bool = False,
              allowed_senders: Sequence[str] = ()) -> None:
        if osc is not None:
            from bridge.osc import OscServer

            host, port = parse_host_port(osc)
            try:
                self.osc = OscServer(self.state, host=host, port=port, presets_dir=presets_dir,
                                     on_preset=on_preset, allow_remote=allow_remote,
                                     allowed_senders=tuple(allowed_senders)).start()
            except OSError as exc:
                raise ValueError(f"cannot serve OSC on {host}:{port} ({exc.strerror}); pick another port with "
                                 f"--osc {host}:{port + 1}, or --osc {host}:0 for any free port") from None
        if midi is not None:
            self._start_midi(tuple(midi))

    def _start_midi(self, ports: tuple[str, ...]) -> None:
        _prefer_jack_midi()
        from bridge.midi import MidiInput, MidiRouter, MidiUnavailable

        router = MidiRouter(self.state)
        midi_in = MidiInput(router, ports=list(ports) or None)
        try:
            self.midi_ports = tuple(midi_in.start())
        except MidiUnavailable as exc:
            router.close()
            if ports:  # the user named ports: not having them is an error
                raise ValueError(str(exc)) from None
            self._say(f"steerbridge: MIDI off: {exc}")
            return
        self._midi_router, self._midi_input = router, midi_in

    def notify_loop(self, path: Path, kind: str) -> None:
        if self.osc is not None:
            self.osc.notify_loop(path, kind)

    def notify_progress(self, done: int, total: int, label: str) -> None:
        if self.osc is not None:
            self.osc.notify_progress(done, total, label)

    def notify_error(self, kind: str, message: str) -> None:
        if self.osc is not None:
            self.osc.notify_error(kind, message)
        else:
            log.warning("%s: %s", kind, message)

    def close(self) -> None:
        if self._midi_input is not None:
            self._midi_input.close()
            self._midi_router.close()
            self._midi_input = self._midi_router = None
        if self.osc is not None:
            self.osc.stop()
            self.osc = None


def _prefer_jack_midi() -> None:
    """No ALSA sequencer but a JACK server: use rtmidi's JACK API (unless MIDO_BACKEND says otherwise)."""
    if os.environ.get("MIDO_BACKEND") or os.path.exists("/dev/snd/seq"):
        return
    from bridge.portaudio import jack_running

    if jack_running():
        import mido

        mido.set_backend("mido.backends.rtmidi/UNIX_JACK")


class PrerenderProgress:
    """A tqdm bar (stderr) counting delivered loops while :meth:`wait` blocks."""

    def __init__(self, *, enabled: bool, on_tick: Callable[[int, int], None] | None = None) -> None:
        self._enabled, self._on_tick = enabled, on_tick
        self._bar: tqdm | None = None
        self._done = self._total = 0
        self._lock = threading.Lock()

    @contextmanager
    def run(self, total: int) -> Iterator[PrerenderProgress]:
        bar = tqdm(total=total, desc="pre-rendering loops", unit="loop", file=sys.stderr,
                   disable=not self._enabled, leave=True)
        with self._lock:
            self._bar, self._done, self._total = bar, 0, total
        try:
            yield self
        finally:
            with self._lock:
                self._bar = None
            bar.close()

    def tick(self) -> None:
        with self._lock:
            bar = self._bar
            if bar is None:
                return
            self._done += 1  # counted here: a disabled tqdm does not count
            if self._done > self._total:
                self._total = bar.total = self._done  # a knob moved meanwhile: the plan grew
            bar.update(1)
            done, total = self._done, self._total
        if self._on_tick is not None:
            self._on_tick(done, total)

    @staticmethod
    def wait(scheduler: RenderScheduler, timeout: float | None) -> bool:
        """Wait for the scheduler to go idle in short slices (so Ctrl-C lands promptly)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not scheduler.wait_idle(timeout=0.2):
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True
