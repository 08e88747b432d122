"""A session in time with the band: Link's tempo sets the loop length in bars, its bar lines the starts.

:class:`LinkPlay` ties a :class:`~steerbridge.bridge.live.link.LinkSession`
to a running session (built by :class:`~steerbridge.bridge.live.session.Session`
when Link is on):

- **Loop length and tempo.** The scene's seconds are ``bars`` bars at the
  Link tempo and its ``bpm`` is that tempo (``state.set_loop_tempo(...,
  source="link")``), so the scheduler renders that long, and a model with a
  beat input plays the band's tempo; every delivered loop is trimmed or
  padded to the sample-exact bar length at the output rate
  (``VoiceBank.fit``). A tempo asked for here (OSC ``/steer/bpm``, the
  preset's tempo knob) goes to the Link session, as any peer's would.
- **Bar lines.** The Link thread publishes its beat clock to a
  :class:`~steerbridge.bridge.audio.bars.BarSync`, which the sink's clock
  calls instead of the player: loops start on bar lines, a new scene waits
  for the next bar line.
- **Tempo follow.** A tempo change re-times the scene (latest wins: the
  scheduler re-plans the exact renders at the new length, which swap in at a
  bar line when they land) and, on the ``steerbridge-tempo`` thread, the loops
  playing now are time-stretched to the new bar length (Rubber Band), the
  audible ones first, and swapped in at once.
- **Transport.** Link's start/stop sets the state's ``playing``; a play or
  stop from OSC, MIDI or the panel is sent to Link. Either lands on the next
  bar line (the ``BarSync`` gate), not at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from steerbridge.bridge.audio.bars import BarSync, bar_frames, bar_seconds, fit_loop
from steerbridge.bridge.audio.loops import Loop
from steerbridge.bridge.audio.player import LoopPlayer
from steerbridge.bridge.control.state import Change, ControlState
from steerbridge.bridge.live.link import LinkSession, LinkStatus, tempo_key
from steerbridge.bridge.live.scheduler import LoopReady
from steerbridge.bridge.live.voicebank import SceneBank, VoiceBank
from steerbridge.bridge.presets.model import Preset

__all__ = ["LinkOptions", "LinkPlay", "start_link"]

log = logging.getLogger(__name__)
Notify = Callable[[str, object], None]  # OSC feedback: (/state/link/<name>, value)


@dataclass(frozen=True)
class LinkOptions:
    tempo: float = 120.0  # until a peer says otherwise
    quantum: float = 4.0  # beats per bar (Live's launch quantum of one bar is 4)
    start_stop_sync: bool = True
    wait_for_peers_s: float = 1.0  # at start: a peer's tempo before the first render saves a re-render
    stretch: bool = True  # time-stretch the playing loops at a tempo change (needs pedalboard)


class LinkPlay:
    """Link for one session: see the module docstring. ``start`` joins, ``close`` leaves."""

    def __init__(self, state: ControlState, player: LoopPlayer, bank: VoiceBank, *, rate: int, blocksize: int,
                 latency_s: float, remix: Callable[[], None], notify: Notify | None = None,
                 options: LinkOptions = LinkOptions()) -> None:
        self.state, self.player, self.bank, self.rate, self.options = state, player, bank, rate, options
        self._remix, self._notify = remix, notify or (lambda name, value: None)
        self.link = LinkSession(tempo=options.tempo, quantum=options.quantum,
                                start_stop_sync=options.start_stop_sync)
        self.sync = BarSync(player, rate=rate, blocksize=blocksize, latency_s=latency_s)
        self._bpm = tempo_key(options.tempo)
        self._lengths: dict[int, float] = {}
        self._follow_transport = False
        self._remove: list[Callable[[], None]] = []
        self._want = threading.Condition()
        self._generation = 0
        self._stopping = False
        self._stretcher: threading.Thread | None = None
        self._origins: dict[object, tuple[SceneBank, float]] = {}  # stretched scene -> (rendered bank, its tempo)
        self.stretched = 0  # loops stretched to a new tempo
        self.last_stretch_s = 0.0  # from a tempo change seen to its first stretched loop in the player
        self._changed_at = 0.0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LinkPlay:
        self.link.start(wait_for_peers_s=self.options.wait_for_peers_s)
        self.link.add_timeline_sink(self._on_timeline)
        self._bpm = tempo_key(self.link.status().tempo)
        self._retime()
        self.bank.fit = self._fit
        self._remove = [self.link.add_listener(self._on_link), self.state.add_listener(self._on_change)]
        if self.options.stretch:
            self._stretcher = threading.Thread(target=self._stretch_loop, name="steerbridge-tempo", daemon=True)
            self._stretcher.start()
        return self

    def follow_transport(self) -> None:
        """From now on the state's ``playing`` and Link's transport follow each other (called once
        playback has started, so the session's own start does not start the band)."""
        self._follow_transport = True
        self.state.set_playing(self.link.status().playing, source="link")

    def close(self) -> None:
        for remove in self._remove:
            remove()
        self._remove = []
        with self._want:
            self._stopping = True
            self._want.notify_all()
        if self._stretcher is not None:
            self._stretcher.join(timeout=10)
            self._stretcher = None
        self.bank.fit = None
        self.link.close()

    def status(self) -> LinkStatus:
        return self.link.status()

    @property
    def bpm(self) -> float:
        return self._bpm

    def bar_frames(self) -> int:
        """The sample-exact loop length now (the state's bars at the Link tempo)."""
        return bar_frames(self.state.snapshot().bars, self._bpm, self.rate, self.options.quantum)

    def osc_state(self) -> list[tuple[str, tuple[object, ...]]]:
        """What a new OSC subscriber is told about Link (``/steer/state/link/...``)."""
        st = self.link.status()
        return [("/state/link/tempo", (tempo_key(st.tempo),)), ("/state/link/peers", (st.peers,)),
                ("/state/link/playing", (int(st.playing),))]

    def swap(self) -> str | None:
        """How a new scene comes in: at once while the loop heard now is not the current bar length
        (the tempo changed and no stretched loop is in yet: every bar it stays is off the band's
        tempo), else at the next bar line (None: the session's default, a bar line with Link)."""
        loop = self.player.current_loop()
        return "now" if loop is not None and loop.frames != self.bar_frames() else None

    # ------------------------------------------------------------------ wiring
    def _on_timeline(self, timeline: object) -> None:
        self.sync.timeline = timeline  # NB: a reference store; the audio callback reads it once per block

    def _on_link(self, what: str, value: object) -> None:
        """On the Link thread: a tempo, peer count or transport change."""
        self._notify(what, value)
        if what == "tempo":
            self._changed_at = time.perf_counter()
            self._bpm = float(value)  # type: ignore[arg-type]
            self._retime()
            self._ask_stretch()
        elif what == "playing" and self._follow_transport:
            self.state.set_playing(bool(value), source="link")

    def _on_change(self, change: Change) -> None:
        asked = _asked_tempo(change, self.state.snapshot().preset)
        if asked is not None:
            self.link.set_tempo(asked)  # a tempo asked for here goes to the band, as any peer's
            # and the loop follows now, at the tempo Link will echo (0.01 BPM), seconds and tempo together:
            # waiting for the echo made one render at the asked tempo and the old length, then another
            self._bpm = tempo_key(asked)
            self._retime()
        elif change.kind in ("bars", "preset") or (change.kind in ("seconds", "bpm") and change.source != "link"):
            self._retime()
        elif change.kind == "playing" and change.source != "link" and self._follow_transport:
            self.link.set_playing(bool(change.value))

    def _retime(self) -> None:
        """Seconds and the loop-length table for the current bars and tempo."""
        bars, q = self.state.snapshot().bars, self.options.quantum
        frames = bar_frames(bars, self._bpm, self.rate, q)
        if frames not in self._lengths:
            if len(self._lengths) > 64:  # only lengths of loops still around matter
                self._lengths.pop(next(iter(self._lengths)))
            self._lengths[frames] = bars
            self.sync.bars_by_frames = dict(self._lengths)  # NB: replaced whole for the audio thread
        # the tempo too: a model with a beat input plays the band's (loops of others only change length)
        self.state.set_loop_tempo(bar_seconds(bars, self._bpm, q), tempo_key(self._bpm), source="link")

    def _fit(self, loop: Loop) -> Loop:
        return fit_loop(loop, self.bar_frames())

    # ------------------------------------------------------------------ tempo follow (steerbridge-tempo)
    def _ask_stretch(self) -> None:
        with self._want:
            self._generation += 1
            self._want.notify_all()

    def _stretch_loop(self) -> None:
        done = 0
        while True:
            with self._want:
                self._want.wait_for(lambda: self._stopping or self._generation != done)
                if self._stopping:
                    return
                done = self._generation
            try:
                self._stretch_playing(done)
            except Exception as exc:  # tempo follow degrades to waiting for the new renders
                log.exception("time stretch failed")
                self._notify("error", f"time stretch failed: {exc}")

    def _stretch_playing(self, generation: int) -> None:
        from steerbridge.bridge.audio.stretch import stretch_loop

        latest = self.bank.latest
        if latest is None:
            return
        bank, bpm_from = self._origins.get(latest.scene, (latest, None))
        items = _bank_items(bank)
        if not items:
            return
        if bpm_from is None:  # a rendered scene: its tempo is in its length
            frames = items[0][3].frames
            bpm_from = self.options.quantum * 60.0 * self.rate * self._lengths.get(frames, 0) / frames
            if bpm_from <= 0:
                return
        bpm = self._bpm
        scene = ("link-stretch", bank.scene, bpm)
        if abs(bpm / bpm_from - 1.0) < 1e-6:
            return
        self._origins = {scene: (bank, bpm_from)}
        audible = set(self.player.targets())
        items.sort(key=lambda item: item[3] not in audible)  # the loops heard now first
        for key, stops, alphas, loop in items:
            audio = stretch_loop(loop.planar(), loop.rate, bpm / bpm_from, high_quality=False)  # ~3x faster
            if generation != self._generation or self._stopping:
                return  # a newer tempo: latest wins
            now = self.bank.latest
            if now is None or now.scene not in (latest.scene, scene):
                return  # the exact render at the new tempo has landed: it wins
            ready = LoopReady(key=f"stretch:{key}:{bpm}", exact=key.startswith("exact"), stops=stops, alphas=alphas,
                              scene=scene, version=self.state.version, audio=audio, sample_rate=loop.rate,
                              from_cache=True)
            self.bank.add(ready)
            self.stretched += 1
            self._remix()
            if self.stretched and loop is items[0][3]:
                self.last_stretch_s = time.perf_counter() - self._changed_at


def start_link(session: Any) -> LinkPlay:
    """Join Link for a :class:`~steerbridge.bridge.live.session.Session` whose output and player exist."""
    o, sink = session.options, session.sink
    play = LinkPlay(session.state, session.player, session.bank, rate=sink.rate, blocksize=o.blocksize,
                    latency_s=sink.latency_s, remix=lambda: session.mixer and session.mixer.update(swap="now"),
                    notify=session.surfaces.notify_link, options=LinkOptions(quantum=o.link_quantum)).start()
    session.surfaces.extra_state.append(play.osc_state)
    return play


def _bank_items(bank: SceneBank) -> list[tuple[str, tuple[int, ...] | None, dict[str, float], Loop]]:
    """(name, stops or None, alphas, loop) of every loop of a scene, stops first, then exact renders."""
    names = bank.knob_names
    points = list(bank.points.items())
    exact = set(bank.exact)
    items = [(f"stop{at}", None, dict(zip(names, at)), loop) for at, loop in points if at not in exact]
    return items + [(f"exact{at}", None, dict(zip(names, at)), loop) for at, loop in points if at in exact]


def _asked_tempo(change: Change, preset: Preset) -> float | None:
    """The tempo ``change`` asks the band for: a bpm set or the tempo knob moved, not by Link itself."""
    if change.source == "link":
        return None
    if change.kind == "bpm" and isinstance(change.value, (int, float)):
        return float(change.value)
    if change.kind == "knob" and change.name in preset.knob_names() and preset.knob(change.name).is_tempo:
        return change.alpha
    return None
