"""Ableton Link: join the session, read its beat clock, follow tempo and start/stop.

``aalink`` (the ``steerbridge[link]`` extra; GPLv3+, like Ableton Link) runs
Link in this process. Link announces itself by multicast on every network
interface of the machine; it is only ever enabled when asked for
(``serve --link``, the panel's Link toggle, ``link = true`` in a preset).

One thread, ``steerbridge-link``, runs the asyncio loop aalink needs and polls
the session every ``poll_s``: the beat at a ``time.perf_counter()`` instant
(measured between two clock reads, so Link's clock and ours never need to be
the same clock), the tempo, the peers and the transport. It publishes a
:class:`~steerbridge.bridge.audio.bars.Timeline` (a single reference store the
audio callback reads) whenever the beat clock moved away from the last one by
more than ``republish_s``, and tells listeners about tempo, peers and
transport changes (on this thread: keep them short).

A transport change lands on the next quantum (bar line): the timeline's
``switch_beat`` is the first whole bar at or after the change. A peer's start
carries its time in the session, so it lands on its bar line even when it
reaches this process late (see ``_switch``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from steerbridge.bridge.audio.bars import Timeline

__all__ = ["LinkUnavailable", "LinkStatus", "LinkSession", "import_aalink", "INSTALL_HINT", "tempo_key"]

log = logging.getLogger(__name__)
INSTALL_HINT = "pip install 'steerbridge[link]'"
Listener = Callable[[str, object], None]  # (what: "tempo" | "peers" | "playing", new value)


class LinkUnavailable(RuntimeError):
    """Link was asked for but aalink is not installed (or cannot start)."""


def import_aalink() -> Any:
    try:
        import aalink
    except ImportError:
        raise LinkUnavailable("Ableton Link needs the aalink package, which is not installed; install the "
                              f"Link extra: {INSTALL_HINT}  (GPLv3+, see the README's licence section)") from None
    return aalink


def tempo_key(bpm: float) -> float:
    """A tempo rounded to 0.01 BPM: Link hands peers' tempos back with float noise
    (130 comes back as 130.00013); a loop is re-rendered only for a real change."""
    return round(float(bpm), 2)


@dataclass(frozen=True)
class LinkStatus:
    enabled: bool
    tempo: float
    peers: int
    playing: bool
    beat: float
    quantum: float
    start_stop_sync: bool

    def summary(self) -> str:
        peers = f"{self.peers} peer" + ("" if self.peers == 1 else "s")
        return f"Link {self.tempo:.2f} BPM, {peers}, {'playing' if self.playing else 'stopped'}"


class LinkSession:
    """This process as one Link peer; :meth:`start` joins, :meth:`close` leaves."""

    def __init__(self, *, tempo: float = 120.0, quantum: float = 4.0, start_stop_sync: bool = True,
                 poll_s: float = 0.005, republish_s: float = 0.0002) -> None:
        if not 20.0 <= tempo <= 999.0:
            raise ValueError(f"tempo {tempo} BPM is outside Link's range 20..999")
        if not quantum > 0:
            raise ValueError(f"quantum {quantum}: give the beats per bar, e.g. 4")
        self._aalink = import_aalink()
        self.quantum, self.start_stop_sync = float(quantum), start_stop_sync
        self._initial_tempo, self._poll_s, self._republish_s = float(tempo), poll_s, republish_s
        self._listeners: list[Listener] = []
        self._link: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._local_playing: bool | None = None  # without start/stop sync: our own transport
        self._last_beat = -math.inf  # the beat at the previous poll
        self.timeline: Timeline | None = None  # NB: replaced whole; readers take one reference
        self._status = LinkStatus(False, float(tempo), 0, False, 0.0, float(quantum), start_stop_sync)
        self._sinks: list[Callable[[Timeline], None]] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, wait_for_peers_s: float = 0.0) -> LinkSession:
        """Join the Link session; optionally wait up to ``wait_for_peers_s`` for a peer (its tempo wins)."""
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="steerbridge-link", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10) or self._link is None:
            self.close()
            raise LinkUnavailable("Link did not start within 10 s")
        deadline = time.monotonic() + wait_for_peers_s
        while time.monotonic() < deadline and self._link.num_peers == 0:
            time.sleep(0.01)
        return self

    def close(self) -> None:
        self._stopping.set()
        loop, thread = self._loop, self._thread
        if thread is not None:
            thread.join(timeout=5)  # the poll loop sees _stopping within poll_s
        self._thread = None
        if self._link is not None:
            self._link.enabled = False  # leave the session at once (peers see us go)
            self._link = None
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop = None

    def __enter__(self) -> LinkSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ control (any thread)
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        self._listeners = [*self._listeners, listener]

        def remove() -> None:
            self._listeners = [x for x in self._listeners if x is not listener]

        return remove

    def add_timeline_sink(self, sink: Callable[[Timeline], None]) -> None:
        """Call ``sink(timeline)`` with every published timeline (on the Link thread)."""
        self._sinks = [*self._sinks, sink]
        if self.timeline is not None:
            sink(self.timeline)

    def set_tempo(self, bpm: float) -> None:
        if not 20.0 <= bpm <= 999.0:
            raise ValueError(f"tempo {bpm} BPM is outside Link's range 20..999")
        self._call(lambda link: setattr(link, "tempo", float(bpm)))

    def set_playing(self, playing: bool) -> None:
        """Start or stop the transport (every peer's, with start/stop sync); it lands on the next bar."""
        if self.start_stop_sync:
            self._call(lambda link: setattr(link, "playing", bool(playing)))
        else:
            self._local_playing = bool(playing)

    def status(self) -> LinkStatus:
        return self._status

    # ------------------------------------------------------------------ the Link thread
    def _call(self, action: Callable[[Any], None]) -> None:
        link = self._link
        if link is None:
            raise RuntimeError("Link is not running; start() it first")
        action(link)  # aalink's setters are thread-safe (Link's app session state)

    def _run(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main(ready))
        except Exception:
            log.exception("the Link thread failed")
        finally:
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        # aalink takes the running loop for its callbacks; built here, in that loop.
        link = self._aalink.Link(self._initial_tempo)
        link.quantum = self.quantum
        link.start_stop_sync_enabled = self.start_stop_sync
        link.enabled = True
        self._link = link
        self._poll(link)
        ready.set()
        while not self._stopping.is_set():
            await asyncio.sleep(self._poll_s)
            try:
                self._poll(link)
            except Exception:  # a listener's bug must not stop the beat clock
                log.exception("Link poll failed")

    def _sample(self, link: Any) -> tuple[float, float]:
        """(perf_counter instant, Link beat then): the read between two clock reads, tightest of three."""
        best = (math.inf, 0.0, 0.0)
        for _ in range(3):
            t0 = time.perf_counter()
            beat = float(link.beat)
            t1 = time.perf_counter()
            if t1 - t0 < best[0]:
                best = (t1 - t0, (t0 + t1) / 2, beat)
            if best[0] < 0.0001:
                break
        return best[1], best[2]

    def _poll(self, link: Any) -> None:
        t, beat = self._sample(link)
        bpm, peers = float(link.tempo), int(link.num_peers)
        playing = bool(link.playing) if self.start_stop_sync else (
            self._local_playing if self._local_playing is not None else True)
        old, tl = self._status, self.timeline
        changed = []
        if tempo_key(bpm) != tempo_key(old.tempo):
            changed.append(("tempo", tempo_key(bpm)))
        if peers != old.peers:
            changed.append(("peers", peers))
        if tl is None or playing != tl.playing:
            before = tl.playing_at(tl.beat_at(t)) if tl is not None else playing  # a pending switch may not have landed
            switch = -math.inf
            if tl is not None:
                t, beat, switch = self._switch(link, t, beat, playing, peers)
            changed.append(("playing", playing))
            tl = Timeline(t, beat, bpm, self.quantum, playing, switch, before)
            self._publish(tl)
        elif abs(tl.beat_at(t) - beat) * 60.0 / bpm > self._republish_s or bpm != tl.bpm:
            self._publish(replace(tl, origin=t, beat=beat, bpm=bpm))
        self._status = LinkStatus(True, bpm, peers, playing, beat, self.quantum, self.start_stop_sync)
        self._last_beat = beat
        for what, value in changed:
            for listener in self._listeners:
                try:
                    listener(what, value)
                except Exception:
                    log.exception("Link listener %r failed on %s", listener, what)

    def _switch(self, link: Any, t: float, beat: float, playing: bool, peers: int) -> tuple[float, float, float]:
        """(t, beat, the bar line the transport change lands on) for a change this poll saw.

        The change reaches this poll late: by the poll interval, by a starved
        thread, and for a peer's start by the network too. Quantising the beat
        seen now would then skip a bar line the change came before (a start a
        whole bar late). A peer's start has a time in the Link session: as
        Link's own examples do, beat 0 is put on the first bar line at or after
        it (the beat numbers move by whole bars; the phase stays the band's),
        so a start seen late still lands on its bar line, or joins in phase.
        Anything else lands on the first bar line at or after the previous
        poll's beat, the last moment the old transport was seen.
        """
        q = self.quantum
        if playing and self.start_stop_sync and peers > 0:
            link.request_beat_at_start_playing_time(0.0)
            t, beat = self._sample(link)
            return t, beat, 0.0
        last = self._last_beat if -math.inf < self._last_beat <= beat else beat  # renumbered since: use now
        return t, beat, math.ceil(last / q - 1e-9) * q

    def _publish(self, tl: Timeline) -> None:
        self.timeline = tl
        for sink in self._sinks:
            sink(tl)
