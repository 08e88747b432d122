"""SessionOptions: how a live session plays, listens and renders (the flags `serve` and `gui` share)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SessionOptions"]


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
    slots: int = 16  # player voices per scene: at most 6 sound at once (3 knobs' stops), the rest fade out
    # The GIL is handed between threads every 5 ms by default, so a busy OSC
    # or scheduler thread can hold the audio callback off for a whole block;
    # 1 ms bounds that wait (None leaves the interpreter's setting alone).
    switch_interval_s: float | None = 0.001
    # Measured here: a rendering worker at the audio process's priority caused
    # ~200 xruns per 8 s on JACK (non-real-time); at nice 19, ~80. None: leave it.
    engine_nice: int | None = 19
    # Torch threads in the engine worker. None: every core (it is niced, so audio keeps priority); a render
    # of the demo model took 0.83 s on 2 threads vs 1.6 s on 1 (benchmarks/scene_ready.py, --engine-threads).
    engine_threads: int | None = None
    # Ableton Link (bridge/live/linkplay.py; needs steerbridge[link]): None follows the preset's `link`.
    link: bool | None = None
    link_quantum: float = 4.0  # beats per bar
