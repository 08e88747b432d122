"""A bounded, self-stopping soak of the live runtime: a simulated set, measured.

A real :class:`steerbridge.bridge.live.session.Session` (engine worker with the
demo model, the null sink's paced clock, OSC on 127.0.0.1) plays a soak copy of
the demo preset in which one knob is bound to NRPN, so 7-bit CC, a 14-bit CC
pair and NRPN are all bound. While the set runs: knob sweeps over OSC (real
UDP), knob moves as MIDI messages made from *the loaded preset's own
bindings* and fed through :class:`steerbridge.bridge.control.midi.router.MidiRouter`
(the decoding path of real ports), prompt changes and preset switches over
OSC. In each phrase every knob is driven by one source (OSC or MIDI, taking
turns), so "the last value sent" is well defined per knob; at the end the
state must hold exactly that value for every knob that was sent one (OSC
arrives as float32, MIDI as its 7-/14-bit step). A sampler records render
queue depth, loop cache size and the RSS of the audio process and of the
worker. Used by ``tests/test_soak.py`` (30 s) and ``benchmarks/soak.py``
(10 min by default).
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
import numpy as np
from pythonosc.osc_message_builder import build_msg

from steerbridge.bridge.presets.model import MidiBinding

__all__ = ["SoakReport", "run_soak", "rss_mb", "midi_for"]

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
    knobs_checked: int = 0  # knobs sent a value since the last preset switch, checked at the end
    knob_mismatches: list[str] = field(default_factory=list)  # "name: state X, last sent Y"
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
                f"rss_worker_growth_mb: {self.growth_mb(2):.1f}",
                f"knobs_checked: {self.knobs_checked}", f"knob_mismatches: {len(self.knob_mismatches)}",
                f"state_followed_input: {int(self.followed)}"]

    @property
    def followed(self) -> bool:
        """Every knob sent a value ended at the last value sent (and some were checked)."""
        return self.knobs_checked > 0 and not self.knob_mismatches


SOAK_NRPN = 300


def _presets(folder: Path, *, loop_s: float, steps: int) -> tuple[Path, Path]:
    """The demo preset with density on NRPN (7-bit CC, a 14-bit pair and NRPN all bound), and a variant."""
    shutil.copytree(ROOT / "presets" / "vectors", folder / "vectors")
    text = (ROOT / "presets" / "demo.toml").read_text()
    text = text.replace("steps = 8 ", f"steps = {steps} ").replace("seconds = 4.0", f"seconds = {loop_s}")
    nrpn = text.replace('midi = { channel = 1, cc = 75, mode = "7bit" }',
                        f'midi = {{ channel = 1, nrpn = {SOAK_NRPN}, mode = "nrpn" }}')
    assert nrpn != text, "presets/demo.toml changed: bind one of its knobs to NRPN here again"
    (folder / "demo.toml").write_text(nrpn)
    (folder / "alt.toml").write_text(nrpn.replace('name = "brightness"', 'name = "air"')
                                     .replace('osc = "/steer/knob/brightness"', "").replace("seed = 1234", "seed = 7"))
    return folder / "demo.toml", folder / "alt.toml"


def midi_for(binding: MidiBinding, value: float) -> tuple[list[mido.Message], float]:
    """The messages a controller sends for ``value`` on ``binding``, and the value the state should then hold."""
    ch = binding.channel - 1
    if binding.mode == "7bit":
        v7 = round(value * 127)
        return [mido.Message("control_change", channel=ch, control=binding.cc, value=v7)], v7 / 127
    v14 = round(value * 16383)
    if binding.mode == "14bit":
        pairs = ((binding.cc, v14 >> 7), (binding.cc + 32, v14 & 127))
    else:  # NRPN: parameter number on CC 99/98, then data entry on CC 6/38
        pairs = ((99, binding.nrpn >> 7), (98, binding.nrpn & 127), (6, v14 >> 7), (38, v14 & 127))
    return [mido.Message("control_change", channel=ch, control=c, value=v) for c, v in pairs], v14 / 16383


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
        expected: dict[str, float] = {}  # knob -> the value the state must hold after the last message sent

        def split(phrase: int) -> tuple[list[str], list[tuple[str, MidiBinding]]]:
            """This phrase's knobs by source: each knob is driven by OSC or by MIDI (its own binding), in turns."""
            knobs = session.state.snapshot().preset.knobs
            by_midi = [(k.name, k.midi) for j, k in enumerate(knobs) if k.midi is not None and (j + phrase) % 2]
            taken = {name for name, _ in by_midi}
            return [k.name for k in knobs if k.name not in taken], by_midi

        while (now := time.monotonic()) - start < seconds:
            t = now - start
            phrase = int(t / phrase_s)
            if phrase % 2:  # holding: the message counts catch up without sending (and OSC drains)
                osc_n, midi_n = math.ceil(t * osc_rate), math.ceil(t * midi_rate)
            by_osc, by_midi = split(phrase // 2)
            while osc_n < t * osc_rate and by_osc:  # sweeps: each knob its own slow sine over OSC
                name = by_osc[osc_n % len(by_osc)]
                value = 0.5 + 0.5 * math.sin(t * (0.3 + 0.1 * (osc_n % 3)))
                sock.sendto(build_msg(f"/steer/knob/{name}", [value]).dgram, target)
                expected[name] = float(np.float32(value))  # OSC's f is a float32
                osc_n += 1
                report.osc_sent += 1
            while midi_n < t * midi_rate and by_midi:
                name, binding = by_midi[midi_n % len(by_midi)]
                messages, expected[name] = midi_for(binding, 0.5 + 0.5 * math.cos(t * 0.2 + midi_n % 3))
                for msg in messages:
                    router.handle(msg)
                    report.midi_sent += 1
                midi_n += 1
            if now >= next_prompt:
                sock.sendto(build_msg("/steer/prompt", [next(prompts)]).dgram, target)
                report.prompt_changes += 1
                next_prompt += prompt_every_s
            if now >= next_preset:
                path = next(presets)
                sock.sendto(build_msg("/steer/preset", [path.name]).dgram, target)
                report.preset_changes += 1
                next_preset += preset_every_s
                # Knobs reset to the new preset's defaults once it is applied (on the preset-load
                # thread, after the knob messages sent before it): wait for that, so no MIDI message
                # is sent to the old preset's knobs.
                _wait(lambda p=path: session.state.snapshot().preset.path == p.resolve(), 10.0)
                expected.clear()
                t = time.monotonic() - start
                osc_n, midi_n = math.ceil(t * osc_rate), math.ceil(t * midi_rate)
            time.sleep(0.005)
        _wait(lambda: all(abs(session.state.value(n) - v) <= 1e-6 for n, v in expected.items()), 5.0)
        report.knobs_checked = len(expected)
        report.knob_mismatches = [f"{n}: state {session.state.value(n):.6f}, last sent {v:.6f}"
                                  for n, v in expected.items() if abs(session.state.value(n) - v) > 1e-6]
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


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
