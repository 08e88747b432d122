"""What a session reports: events to its listeners, and its status.

Plain data, so the panel, ``serve``'s log and OSC feedback can all read them
without touching the session's internals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from steerbridge.bridge.audio.wavfile import slug
from steerbridge.bridge.control.state import ControlState

__all__ = ["SessionEvent", "SessionStatus", "collect_status", "loop_name"]


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
    source: str | None = None  # for errors: render | engine | osc | midi | wav | callback | audio


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
    callback_errors: int = 0  # audio blocks silenced because the mix raised (a bug; reported once per kind)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        knobs = ", ".join(f"{k}={a:+.2f}" for k, a in self.knobs.items()) or "no knobs"
        return (f"playing to {self.output}; OSC {self.osc or 'off'}; MIDI {', '.join(self.midi_ports) or 'off'}; "
                f"{knobs}; underruns {self.underruns}, xruns {self.xruns}")


def collect_status(*, state: ControlState, sink: Any, player: Any, client: Any, scheduler: Any,
                   cache_bytes: int, osc: str | None, midi_ports: tuple[str, ...],
                   callback_errors: int = 0) -> SessionStatus:
    """A session's status from its parts (any of sink, player, client, scheduler may not exist yet)."""
    snap = state.snapshot()
    pstats = player.stats() if player is not None else None
    cstatus = client.status() if client is not None else None
    return SessionStatus(
        output=sink.describe() if sink else "not started", rate=sink.rate if sink else 0,
        blocksize=sink.blocksize if sink else 0, latency_ms=round(sink.latency_s * 1000, 2) if sink else 0.0,
        playing=snap.playing, prompt=snap.prompt, seed=snap.seed, knobs=snap.alphas(),
        blocks=pstats.blocks if pstats else 0, underruns=pstats.underruns if pstats else 0,
        xruns=sink.xruns if sink else 0,
        engine_alive=bool(cstatus and cstatus.alive), engine_restarts=cstatus.restarts if cstatus else 0,
        renders_queued=cstatus.queued if cstatus else 0,
        renders_done=scheduler.stats().completed if scheduler else 0,
        cache_mb=round(cache_bytes / 1e6, 1), osc=osc, midi_ports=midi_ports, callback_errors=callback_errors)


def loop_name(state: ControlState, ready: Any) -> str:
    """A WAV file name for a delivered loop (``LoopReady``): prompt, seed and each knob's alpha."""
    # The scheduler only delivers loops of the scene it plans for, which is the
    # state's scene unless the prompt changed this very moment.
    snap = state.snapshot()
    prompt, seed = snap.prompt, snap.seed
    knobs = "_".join(f"{slug(name, limit=16)}{alpha:+.3f}" for name, alpha in ready.alphas.items())
    return f"{slug(prompt)}_s{seed}" + (f"_{knobs}" if knobs else "")
