"""Draw docs/architecture.png: steerbridge's two processes, their threads and the data flow.

    .venv/bin/python tools/draw_architecture.py [--out docs/architecture.png]

One matplotlib figure (Agg backend, no display needed), about 1600x1000 px on
white. docs/architecture.md explains the picture; change both together.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Fill colours by role; the legend at the bottom right repeats them.
CONTROL = "#dbe9f8"  # control threads: may take a lock, never touch the audio buffer
DATA = "#eeeeee"  # shared objects (no thread of their own)
REALTIME = "#fde2c8"  # the audio callback: never blocks
ENGINE = "#dcefd9"  # the engine worker process
PROCESS_EDGE = {"audio": "#3b6ea8", "engine": "#3d8b3d"}

Box = tuple[float, float, float, float]  # x, y, width, height in axis units (160 x 100)


def box(ax: Axes, xywh: Box, title: str, body: str, fill: str, *, size: float = 9.0) -> Box:
    """A rounded box with a bold title line and a smaller body; returns its rectangle."""
    x, y, w, h = xywh
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.25,rounding_size=0.9",
                                facecolor=fill, edgecolor="#555555", linewidth=1.0, zorder=2))
    ax.text(x + w / 2, y + h - 1.0, title, ha="center", va="top", fontsize=size + 0.8,
            fontweight="bold", zorder=3)
    if body:
        ax.text(x + w / 2, y + h - 3.9, body, ha="center", va="top", fontsize=size, zorder=3,
                linespacing=1.25)
    return xywh


def edge(b: Box, side: str, frac: float = 0.5) -> tuple[float, float]:
    """A point on a box side: 'l', 'r', 't' or 'b', ``frac`` along it (left to right, bottom to top)."""
    x, y, w, h = b
    return {"l": (x, y + frac * h), "r": (x + w, y + frac * h),
            "t": (x + frac * w, y + h), "b": (x + frac * w, y)}[side]


def arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], label: str = "", *,
          color: str = "#333333", dashed: bool = False, rad: float = 0.0,
          at: tuple[float, float] | None = None, size: float = 8.3) -> None:
    """An arrow from ``start`` to ``end``; ``label`` sits at ``at`` (default: the midpoint)."""
    ax.annotate("", xy=end, xytext=start, zorder=4,
                arrowprops=dict(arrowstyle="-|>", color=color, lw=1.4, mutation_scale=13,
                                linestyle=(0, (4, 3)) if dashed else "-",
                                connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))
    if label:
        lx, ly = at if at is not None else ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        ax.text(lx, ly, label, ha="center", va="center", fontsize=size, color=color, zorder=5,
                style="italic", bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none"))


def process_frame(ax: Axes, xywh: Box, title: str, color: str) -> None:
    x, y, w, h = xywh
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.3,rounding_size=1.5",
                                facecolor="none", edgecolor=color, linewidth=2.2, zorder=1))
    ax.text(x + 1.2, y + h - 1.0, title, ha="left", va="top", fontsize=11.5, fontweight="bold", color=color)


def draw(out: Path) -> None:
    fig = plt.figure(figsize=(16, 10), dpi=100, facecolor="white")
    ax = fig.add_axes((0.005, 0.005, 0.99, 0.99))
    ax.set_xlim(0, 160)
    ax.set_ylim(0, 100)
    ax.axis("off")
    ax.text(80, 99, "steerbridge: two processes, their threads, and how a knob move becomes sound",
            ha="center", va="top", fontsize=14, fontweight="bold")

    process_frame(ax, (1, 1.5, 108.5, 93), "Audio process  (steerbridge serve | steerbridge gui)",
                  PROCESS_EDGE["audio"])
    process_frame(ax, (118, 1.5, 41, 93), "Engine worker process (spawned)", PROCESS_EDGE["engine"])
    ax.plot([113.8, 113.8], [3, 92], color="#888888", lw=1.6, ls=(0, (6, 4)), zorder=1)
    ax.text(113.8, 47, "process boundary (multiprocessing 'spawn')",
            rotation=90, ha="center", va="center", fontsize=8.8, color="#555555",
            bbox=dict(boxstyle="round,pad=0.25", facecolor="white", edgecolor="none"))

    # -- control surfaces and presets
    presets = box(ax, (3, 76, 19, 12), "presets", "bridge.presets\nPreset TOML,\nvector paths", DATA)
    osc = box(ax, (25, 76, 26, 12), "OSC server thread",
              "'steerbridge-osc'  (bridge.control.osc)\nguard -> python-osc dispatcher\n-> thin handler", CONTROL)
    midi = box(ax, (54, 76, 25, 12), "MIDI input callbacks",
               "rtmidi thread per port\n(bridge.control.midi)\nMidiRouter.handle", CONTROL)
    qt = box(ax, (82, 76, 25, 12), "Qt panel: GUI thread",
             "steerbridge.gui  (gui only)\nSessionController writes\nthe state, never waits", CONTROL)
    state = box(ax, (36, 62, 44, 8.5), "ControlState  (bridge.control.state)",
                "versioned knob / scene values; listeners run on the writer's thread", DATA)
    arrow(ax, edge(osc, "b"), edge(state, "t", 0.12), "set_value", at=(38, 73))
    arrow(ax, edge(midi, "b"), edge(state, "t", 0.75), "set_value", at=(67, 73))
    arrow(ax, edge(qt, "b"), edge(state, "r", 0.6), "set_value", at=(88.5, 71.5))
    arrow(ax, edge(presets, "b"), edge(state, "l", 0.6), "Preset", at=(18, 68.5))

    # -- knob path (left), render path (middle/right)
    mixer = box(ax, (3, 44, 27, 11), "mixer thread",
                "'steerbridge-mixer'  (Session)\nknob moved: VoiceBank.gains\n-> LoopPlayer.set_voices", CONTROL)
    sched = box(ax, (36, 44, 34, 11), "RenderScheduler thread",
                "'steerbridge-scheduler' (bridge.live.scheduler)\nnewest snapshot wins; plans exact render\n"
                "+ alpha stops; render_job_for(preset, ...)", CONTROL, size=8.6)
    client = box(ax, (76, 44, 31, 11), "EngineClient = WorkerClient",
                 "bridge.engine_link.client: priority queue,\none job at a time to the worker;\n"
                 "reader thread 'steerbridge-worker-events'", CONTROL, size=8.6)
    arrow(ax, edge(state, "b", 0.1), edge(mixer, "t", 0.75), "knob change: wake", at=(27, 59))
    arrow(ax, edge(state, "b", 0.6), edge(sched, "t", 0.6), "change: wake", at=(62, 58.5))
    arrow(ax, edge(sched, "r", 0.7), edge(client, "l", 0.7), "submit / cancel", at=(73, 56.9))
    arrow(ax, edge(client, "l", 0.25), edge(sched, "r", 0.25), "", color="#3d8b3d")
    ax.text(75.5, 42.6, "future done", ha="center", va="top", fontsize=8.3, color="#3d8b3d", style="italic")

    # -- loops coming back
    cache = box(ax, (60, 27, 22, 10), "LoopCache", "bridge.live.cache\nLRU keyed by job\n+ vector file digests", DATA)
    bank = box(ax, (33, 27, 23, 10), "VoiceBank", "bridge.live.voicebank\nsoxr resample once;\nloops + gains per knob",
               DATA)
    arrow(ax, edge(sched, "b", 0.8), edge(cache, "t", 0.35), "get / put", at=(64.6, 40.5))
    arrow(ax, edge(sched, "b", 0.3), edge(bank, "t", 0.7), "LoopReady -> _on_loop\n(scheduler thread)",
          at=(50.5, 40.3))
    arrow(ax, edge(mixer, "b", 0.7), edge(bank, "l", 0.75), "gains()", at=(24.5, 38))

    # -- audio out
    player = box(ax, (3, 13, 27, 13), "LoopPlayer", "bridge.audio.player\nset_voices: target gains,\n"
                 "decks; equal-power scene\ncrossfade, ~10 ms smoothing", DATA, size=8.6)
    callback = box(ax, (36, 13, 34, 10), "audio callback: LoopPlayer.process",
                   "PortAudio thread (or the null/WAV clock)\ncopies + mixes preallocated buffers;\n"
                   "no lock, no allocation, never blocks", REALTIME, size=8.6)
    sinks = box(ax, (36, 3, 71, 7), "sink  (bridge.audio.sinks, open_sink)",
                "DeviceSink: sounddevice  |  WavSink: WAV files + OSC /steer/loop  |  NullSink: offline clock",
                DATA, size=8.6)
    arrow(ax, edge(mixer, "b", 0.3), edge(player, "t", 0.3), "set_voices", at=(11, 29))
    arrow(ax, edge(bank, "b", 0.3), edge(player, "r", 0.8), "set_voices", at=(36, 25))
    arrow(ax, edge(player, "r", 0.3), edge(callback, "l", 0.4), "", color="#b35900")
    arrow(ax, edge(callback, "b", 0.5), edge(sinks, "t", 0.2), "frames", color="#b35900", at=(58, 11.5))
    arrow(ax, edge(bank, "r", 0.2), edge(sinks, "t", 0.62), "_on_loop: sink.loop_ready", dashed=True,
          at=(79, 21), rad=-0.3)
    box(ax, (3, 2.6, 27, 9.2), "Session  (bridge.live.session)",
        "wires all of this; also the threads\nsteerbridge-housekeeping, -autosave,\n-osc-feedback", DATA, size=8.2)

    # -- engine worker process
    req = box(ax, (120, 76, 37, 11.5), "reader thread 'steerbridge-requests'",
              "('job', id, job) -> local job queue\n('cancel', id) -> cancelled set\n(lands between diffusion steps)",
              ENGINE)
    runner = box(ax, (120, 61, 37, 11.5), "main thread: JobRunner.run",
                 "bridge.engine_link.worker\nRenderJob -> RenderRequest + Steering\n(vector files memoised)", ENGINE)
    model = box(ax, (120, 48, 37, 9.5), "SteerableModel.render",
                "steerbridge.engine  (engine.runtime.render)\none render at a time", ENGINE)
    steer = box(ax, (120, 33, 37, 11.5), "SteeringHandle / SiteWrapper",
                "engine.runtime.steering, sites cross_attn, block\noffset / step / gate buffers written\n"
                "in place (no hooks: torch.compile)", ENGINE, size=8.6)
    adapter = box(ax, (120, 19, 37, 10.5), "ModelAdapter  (engine.adapters)",
                  "encode -> sample -> decode\nStableAudioAdapter; register_family", ENGINE)
    result = box(ax, (120, 4, 37, 11.5), "events back",
                 "Progress per step, then\nRenderResult (float32 [channels, samples])\nand JobDone / JobFailed / JobCancelled",
                 ENGINE, size=8.6)
    for a, b in ((req, runner), (runner, model), (model, steer), (steer, adapter), (adapter, result)):
        arrow(ax, edge(a, "b"), edge(b, "t"), color="#3d8b3d")
    arrow(ax, edge(client, "t", 0.85), edge(req, "l", 0.5), "request queue", color="#3d8b3d",
          at=(106.5, 67), rad=-0.25)
    arrow(ax, edge(result, "l", 0.5), edge(client, "b", 0.8), "event queue", color="#3d8b3d", at=(106.5, 27))

    # -- legend
    for i, (fill, text) in enumerate(((CONTROL, "control thread"), (REALTIME, "real time: never blocks"),
                                      (DATA, "shared object"), (ENGINE, "engine worker"))):
        ax.add_patch(FancyBboxPatch((86, 36.4 - i * 2.6), 2.2, 1.6, boxstyle="square,pad=0", facecolor=fill,
                                    edgecolor="#555555", lw=0.8))
        ax.text(89, 37.2 - i * 2.6, text, va="center", fontsize=8.2)

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, facecolor="white")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "architecture.png",
                        help="where to write the PNG (default: docs/architecture.png)")
    args = parser.parse_args(argv)
    draw(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
