"""A bounded, self-stopping soak of the live runtime: a simulated set, measured.

A real :class:`steerbridge.bridge.live.session.Session` (engine worker with the tiny model,
the null sink's paced clock, OSC on 127.0.0.1) plays the demo preset while
the set runs: knob sweeps over OSC (real UDP), knob moves as MIDI messages
through :class:`steerbridge.bridge.control.midi.router.MidiRouter` (7-bit CC, 14-bit CC, NRPN: the
decoding path of real ports), prompt and seed changes and preset switches
over OSC. A sampler records render queue depth, loop cache size and the RSS
of the audio process and of the worker. Used by ``tests/test_soak.py`` (30 s)
and ``benchmarks/soak.py`` (10 min by default).
"""

from __future__ import annotations

import itertools
import math
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mido
from pythonosc.osc_message_builder import build_msg

__all__ = ["SoakReport", "run_soak", "rss_mb"]

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ("lofi hip hop beat with warm piano", "dark techno with a rolling bassline", "ambient pad, slow strings")


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB (Linux /proc), 0.0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class SoakReport:
    seconds: float = 0.0
    osc_sent: int = 0
    midi_sent: int = 0
    prompt_changes: int = 0
    preset_changes: int = 0
    state_changes: int = 0
    blocks: int = 0
    underruns: int = 0
    xruns: int = 0
    renders_completed: int = 0
    renders_cancelled: int = 0
    renders_failed: int = 0
    queue_depth_max: int = 0
    cache_mb_max: float = 0.0
    cache_limit_mb: float = 0.0
    cache_evictions: int = 0
    worker_restarts: int = 0
    rss_mb: list[tuple[float, float, float]] = field(default_factory=list)  # (t, audio process, worker)

    def growth_mb(self, which: int) -> float:
        """RSS growth from the end of the first quarter (warm-up done) to the end."""
        if len(self.rss_mb) < 2:
            return 0.0
        start = next((r for r in self.rss_mb if r[0] >= self.seconds / 4), self.rss_mb[0])
        return self.rss_mb[-1][which] - start[which]

    def lines(self) -> list[str]:
        return [f"seconds: {self.seconds:.0f}", f"osc_messages: {self.osc_sent}", f"midi_messages: {self.midi_sent}",
                f"prompt_changes: {self.prompt_changes}", f"preset_changes: {self.preset_changes}",
                f"state_changes: {self.state_changes}", f"audio_blocks: {self.blocks}",
                f"underruns: {self.underruns}", f"xruns: {self.xruns}",
                f"renders_completed: {self.renders_completed}", f"renders_cancelled: {self.renders_cancelled}",
                f"renders_failed: {self.renders_failed}", f"render_queue_depth_max: {self.queue_depth_max}",
                f"cache_mb_max: {self.cache_mb_max:.1f}", f"cache_limit_mb: {self.cache_limit_mb:.0f}",
                f"cache_evictions: {self.cache_evictions}", f"worker_restarts: {self.worker_restarts}",
                f"rss_audio_mb_end: {self.rss_mb[-1][1] if self.rss_mb else 0:.0f}",
                f"rss_audio_growth_mb: {self.growth_mb(1):.1f}",
                f"rss_worker_mb_end: {self.rss_mb[-1][2] if self.rss_mb else 0:.0f}",
                f"rss_worker_growth_mb: {self.growth_mb(2):.1f}"]


def _presets(folder: Path, *, loop_s: float, steps: int) -> tuple[Path, Path]:
    shutil.copytree(ROOT / "presets" / "vectors", folder / "vectors")
    text = (ROOT / "presets" / "demo.toml").read_text()
    text = text.replace("steps = 8 ", f"steps = {steps} ").replace("seconds = 4.0", f"seconds = {loop_s}")
    (folder / "demo.toml").write_text(text)
    (folder / "alt.toml").write_text(text.replace('name = "brightness"', 'name = "air"')
                                     .replace('osc = "/steer/knob/brightness"', "").replace("seed = 1234", "seed = 7"))
    return folder / "demo.toml", folder / "alt.toml"


def _midi_for(value: float, knob: str) -> list[mido.Message]:
    """The messages a controller sends for ``knob`` at ``value`` with the demo preset's bindings."""
    if knob == "mood":  # 7-bit CC 74
        return [mido.Message("control_change", channel=0, control=74, value=round(value * 127))]
    v14 = round(value * 16383)
    if knob == "tempo":  # 14-bit CC 1 / 33
        return [mido.Message("control_change", channel=0, control=1, value=v14 >> 7),
                mido.Message("control_change", channel=0, control=33, value=v14 & 127)]
    return [mido.Message("control_change", channel=0, control=c, value=v)  # NRPN 300, data entry 6/38
            for c, v in ((99, 300 >> 7), (98, 300 & 127), (6, v14 >> 7), (38, v14 & 127))]


def run_soak(seconds: float, *, osc_rate: float = 200.0, midi_rate: float = 100.0, prompt_every_s: float = 20.0,
             preset_every_s: float = 45.0, phrase_s: float = 4.0, loop_s: float = 1.0, steps: int = 4,
             cache_mb: float = 8.0, engine: str = "worker", say: Callable[[str], None] = lambda _msg: None
             ) -> SoakReport:
    """Run the simulated set for ``seconds`` (plus start-up); returns the measurements.

    Knobs move for ``phrase_s`` seconds, then hold for as long (as a player
    does): while they move, renders go stale and are cancelled; while they
    hold, renders land and the cache fills (and evicts, past ``cache_mb``).
    """
    from steerbridge.bridge.control.midi.router import MidiRouter
    from steerbridge.bridge.live.session import Session, SessionOptions

    folder = Path(tempfile.mkdtemp(prefix="steerbridge-soak-"))
    demo, alt = _presets(folder, loop_s=loop_s, steps=steps)
    options = SessionOptions(output="null", osc="127.0.0.1:0", midi=None, engine=engine, grid="near",
                             cache_mb=cache_mb, progress=False)
    session = Session(demo, options=options, say=say)
    report, stop = SoakReport(cache_limit_mb=cache_mb), threading.Event()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    router: MidiRouter | None = None
    try:
        session.start(timeout=600)
        router = MidiRouter(session.state, persist=False, pickup=False)
        target = session.surfaces.osc.address
        version0 = session.state.version

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.wait(0.25):
                status = session.client.status() if session.client else None
                if status is not None:
                    report.queue_depth_max = max(report.queue_depth_max, status.queued + (status.running is not None))
                report.cache_mb_max = max(report.cache_mb_max, session.cache.stats().bytes / 1e6)
                pid = getattr(session.client, "pid", None)
                report.rss_mb.append((time.monotonic() - t0, rss_mb(), rss_mb(pid) if pid else 0.0))

        sampler = threading.Thread(target=sample, name="soak-sampler", daemon=True)
        sampler.start()
        start = time.monotonic()
        next_prompt, next_preset, presets = start + prompt_every_s, start + preset_every_s, itertools.cycle((alt, demo))
        prompts = itertools.cycle(PROMPTS[1:] + PROMPTS[:1])
        osc_n = midi_n = 0
        while (now := time.monotonic()) - start < seconds:
            t = now - start
            if int(t / phrase_s) % 2:  # holding: the message counts catch up without sending
                osc_n, midi_n = math.ceil(t * osc_rate), math.ceil(t * midi_rate)
            while osc_n < t * osc_rate:  # sweeps: each knob its own slow sine over OSC
                knobs = session.state.snapshot().preset.knob_names()
                name = knobs[osc_n % len(knobs)]
                value = 0.5 + 0.5 * math.sin(t * (0.3 + 0.1 * (osc_n % 3)))
                sock.sendto(build_msg(f"/steer/knob/{name}", [value]).dgram, target)
                osc_n += 1
                report.osc_sent += 1
            while midi_n < t * midi_rate:
                knob = ("mood", "tempo", "brightness")[midi_n % 3]
                for msg in _midi_for(0.5 + 0.5 * math.cos(t * 0.2 + midi_n % 3), knob):
                    router.handle(msg)
                    report.midi_sent += 1
                midi_n += 1
            if now >= next_prompt:
                sock.sendto(build_msg("/steer/prompt", [next(prompts)]).dgram, target)
                report.prompt_changes += 1
                next_prompt += prompt_every_s
            if now >= next_preset:
                sock.sendto(build_msg("/steer/preset", [next(presets).name]).dgram, target)
                report.preset_changes += 1
                next_preset += preset_every_s
            time.sleep(0.005)
        report.osc_sent += report.prompt_changes + report.preset_changes
        report.seconds = time.monotonic() - start
        stop.set()
        sampler.join(timeout=5)
        stats, pstats = session.scheduler.stats(), session.player.stats()
        cstats = session.cache.stats()
        report.state_changes = session.state.version - version0
        report.blocks, report.underruns, report.xruns = pstats.blocks, pstats.underruns, session.sink.xruns
        report.renders_completed, report.renders_cancelled = stats.completed, stats.cancelled
        report.renders_failed, report.cache_evictions = stats.failed, cstats.evictions
        report.worker_restarts = session.client.status().restarts
    finally:
        stop.set()
        sock.close()
        if router is not None:
            router.close()
        session.close()
        shutil.rmtree(folder, ignore_errors=True)
    return report
