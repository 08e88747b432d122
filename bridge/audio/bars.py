"""Bars in samples, and the audio-thread side of playing in time with a beat clock.

With a beat clock (Ableton Link, :mod:`steerbridge.bridge.live.link`) a loop is
a number of bars long, not a number of seconds:

- :func:`bar_frames` is the sample-exact length of ``bars`` bars at a tempo
  (rounded to the nearest frame: 2 bars of 4 beats at 97 BPM and 48 kHz are
  237,526 frames); :func:`fit_loop` trims or zero-pads a rendered loop to it.
- :class:`Timeline` is a beat clock frozen into a line: the beat at a
  ``time.perf_counter()`` instant, the tempo, the quantum (beats per bar) and
  the transport (playing from which beat on). Control threads publish a new one
  with a single reference store; the audio callback only reads it.
- :class:`BarSync` sits between the sink and the
  :class:`~steerbridge.bridge.audio.player.LoopPlayer`: the sink's clock calls
  :meth:`BarSync.process` once per block, which works out the beat at which the
  block's first frame will be *heard* (the callback's time, smoothed, plus the
  output latency), lets the player mix (the player asks :meth:`BarSync.position`
  where a loop should be and :meth:`BarSync.edge` how far the next bar line
  is), and opens or closes the transport gate at the frame where the beat
  clock says so. Loops thus start on bar lines and scene swaps wait for the
  next bar line, both to the frame.

Everything in the callback is arithmetic on floats and in-place numpy on
preallocated arrays: no lock, no array allocation, no I/O.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from steerbridge.bridge.audio.loops import Loop

__all__ = ["bar_seconds", "bar_frames", "fit_loop", "Timeline", "BlockClock", "BarSync", "BeatSync"]


class BeatSync(Protocol):
    """What :class:`~steerbridge.bridge.audio.player.LoopPlayer` asks a beat clock (audio thread)."""

    def position(self, frames: int, pos: int | None, offset: int) -> int: ...

    def edge(self, offset: int) -> int: ...


class _Player(Protocol):  # the LoopPlayer, without importing it (it imports this module's BeatSync)
    channels: int
    max_block: int
    sync: BeatSync | None

    def process(self, out: np.ndarray) -> None: ...


def bar_seconds(bars: float, bpm: float, quantum: float = 4.0) -> float:
    """Seconds of ``bars`` bars of ``quantum`` beats at ``bpm``."""
    _check_tempo(bars, bpm, quantum)
    return bars * quantum * 60.0 / bpm


def bar_frames(bars: float, bpm: float, rate: int, quantum: float = 4.0) -> int:
    """Frames of ``bars`` bars at ``rate``: the nearest whole frame (the phase lock absorbs the rest)."""
    _check_tempo(bars, bpm, quantum)
    return max(1, round(bars * quantum * 60.0 * rate / bpm))


def _check_tempo(bars: float, bpm: float, quantum: float) -> None:
    if not (bars > 0 and math.isfinite(bars)):
        raise ValueError(f"bars={bars!r}; a loop is at least one bar long (bars = 1, 2, 4, ...)")
    if not (20.0 <= bpm <= 999.0):
        raise ValueError(f"tempo {bpm!r} BPM is outside Link's range 20..999")
    if not (quantum > 0 and math.isfinite(quantum)):
        raise ValueError(f"quantum={quantum!r}; give the beats per bar, e.g. 4")


def fit_loop(loop: Loop, frames: int) -> Loop:
    """``loop`` cut or zero-padded to exactly ``frames`` frames (a new read-only buffer).

    A render asked for N bars comes back a few samples off (the model works in
    latent frames, soxr rounds); a loop must be exact or it drifts off the grid.
    """
    if frames <= 0:
        raise ValueError(f"frames={frames}; a loop needs at least one frame")
    if loop.frames == frames:
        return loop
    data = np.zeros(frames * loop.channels, np.float32)
    n = min(frames, loop.frames) * loop.channels
    data[:n] = loop.data[:n]
    data.flags.writeable = False
    return replace(loop, data=data)


@dataclass(frozen=True)
class Timeline:
    """A beat clock as a line: ``beat`` at ``origin`` (``time.perf_counter()`` seconds), ``bpm`` since.

    ``playing`` is the transport from ``switch_beat`` on, ``before`` the
    transport until then (None: the opposite of ``playing``): a start or stop
    lands on the quantum after it was asked for, and a stop asked for before
    a pending start took effect cancels it.
    """

    origin: float
    beat: float
    bpm: float
    quantum: float = 4.0
    playing: bool = True
    switch_beat: float = -math.inf
    before: bool | None = None

    def playing_at(self, beat: float) -> bool:
        """The transport at ``beat``."""
        if beat >= self.switch_beat:
            return self.playing
        return (not self.playing) if self.before is None else self.before

    def beat_at(self, t: float) -> float:
        return self.beat + (t - self.origin) * self.bpm / 60.0

    def time_at(self, beat: float) -> float:
        return self.origin + (beat - self.beat) * 60.0 / self.bpm


class BlockClock:
    """When will the first frame of this block be heard? From the callback times, smoothed.

    A callback runs late by a scheduling delay, never early, so the lower
    envelope of ``t_call - frames_before / rate`` over the last ``window_s``
    is the stream's start time; a block's first frame is then heard at
    ``start + frames_before / rate + latency``. The window follows the slow
    drift between the audio clock and ``perf_counter``; ``jump_blocks`` late
    blocks in a row are an xrun (the stream's line moved) and restart it.
    """

    def __init__(self, *, rate: int, blocksize: int, window_s: float = 1.0, jump_blocks: int = 8) -> None:
        self.rate = rate
        self._ring = [math.inf] * max(4, round(window_s * rate / max(1, blocksize)), jump_blocks + 1)
        self._i = 0
        self._late = 0
        self._jump_s = max(0.001, 0.5 * blocksize / rate)
        self._jump_blocks = jump_blocks
        self.frames = 0  # frames handed to the sink so far
        self.jumps = 0  # xruns seen as a shift of the stream's timeline

    def block_start(self, t_call: float, frames: int) -> float:
        """Record a callback at ``t_call`` for a block of ``frames``; its first frame's (smoothed) time."""
        before = self.frames / self.rate
        offset = t_call - before
        ring, n = self._ring, len(self._ring)
        floor = min(ring)
        ring[self._i] = offset
        self._i = (self._i + 1) % n
        self.frames += frames
        # An xrun drops blocks: from then on every callback is late against the old line.
        # Only a run of late blocks says so (one late callback is just a scheduling delay).
        self._late = self._late + 1 if offset - floor > self._jump_s else 0
        if self._late >= self._jump_blocks:
            recent = min(ring[(self._i - k - 1) % n] for k in range(self._jump_blocks))
            for k in range(n):
                ring[k] = math.inf
            ring[(self._i - 1) % n] = recent
            self._late = 0
            self.jumps += 1
        return min(ring) + before


class BarSync:
    """Leads a :class:`LoopPlayer` by a :class:`Timeline`; see the module docstring.

    ``latency_s``: from ``process`` to the speaker (the sink's output latency).
    ``tolerance_s``: how far a loop may drift from the beat clock before it is
    put back (a jump); below it loops run free, so jitter never clicks.
    ``fade_s``: the transport gate's ramp at a start or stop.
    """

    def __init__(self, player: _Player, *, rate: int, blocksize: int, latency_s: float,
                 tolerance_s: float = 0.0005, fade_s: float = 0.003,
                 now: Callable[[], float] = time.perf_counter) -> None:
        self.player, self.rate, self.latency_s = player, rate, latency_s
        self.timeline: Timeline | None = None  # NB: replaced whole by control threads, read once per block
        self.bars_by_frames: Mapping[int, float] = {}  # loop length -> its bars; replaced whole
        self.clock = BlockClock(rate=rate, blocksize=blocksize)
        self._now = now
        self._tol = max(1, round(tolerance_s * rate))
        self._fade_step = 1.0 / max(1, round(fade_s * rate))
        self._gate = 0.0  # callback-owned transport gain: fades in at the first start
        size = max(player.max_block, blocksize) * 4
        self._g = np.empty(size, np.float32)
        self._idx = np.arange(1, size + 1, dtype=np.float32)
        # Callback-owned per-block values the player's hooks read.
        self._beat0 = 0.0
        self._bpf = 0.0
        self._tl: Timeline | None = None
        self.corrections = 0  # positions put back on the grid (drift beyond the tolerance, or a new loop)
        self.heard: tuple[float, float] = (0.0, 0.0)  # (time the newest block is heard, its first beat)

    # ------------------------------------------------------------------ the sink's callback
    def process(self, out: np.ndarray) -> None:
        flat = out.reshape(-1)
        frames = flat.shape[0] // self.player.channels
        t_first = self.clock.block_start(self._now(), frames) + self.latency_s
        tl = self.timeline
        self._tl = tl
        if tl is None:  # no beat clock yet: free-running loops, as without Link
            self.player.sync = None
            self.player.process(out)
            return
        self._beat0 = tl.beat_at(t_first)
        self._bpf = tl.bpm / 60.0 / self.rate
        self.heard = (t_first, self._beat0)
        self.player.sync = self  # NB: an attribute store; the player reads it at the start of process
        self.player.process(out)
        self._apply_gate(flat, frames, tl)

    def _apply_gate(self, flat: np.ndarray, frames: int, tl: Timeline) -> None:
        """Transport: before frame ``k`` (the switch beat) the old state holds, from ``k`` the new one."""
        after = 1.0 if tl.playing else 0.0
        old = 1.0 if tl.playing_at(-math.inf) else 0.0
        k = 0
        if math.isfinite(tl.switch_beat):
            k = min(frames, max(0, math.ceil((tl.switch_beat - self._beat0) / self._bpf - 1e-9)))
        g = self._gate
        if g == after and k == 0 or g == old and k == frames:
            if g == 0.0:
                flat.fill(0.0)
            return  # settled for the whole block: the common case costs nothing
        gains = self._g[:frames]
        g = self._segment(gains, 0, k, g, old)
        self._gate = self._segment(gains, k, frames, g, after)
        ch = self.player.channels
        for c in range(ch):
            view = flat[c::ch]  # a strided view: multiplied in place, nothing allocated
            view *= gains

    def _segment(self, gains: np.ndarray, start: int, end: int, g: float, target: float) -> float:
        """Fill ``gains[start:end]`` with a linear ramp from ``g`` toward ``target``; the gain at its end."""
        if end <= start:
            return g
        part = gains[start:end]
        if g == target:
            part.fill(target)
            return g
        step = self._fade_step if target > g else -self._fade_step
        np.multiply(self._idx[:end - start], step, out=part)
        part += g
        np.clip(part, min(g, target), max(g, target), out=part)
        return float(part[-1])

    # ------------------------------------------------------------------ the player's hooks (audio thread)
    def _cycle(self, frames: int) -> float:
        """Beats in a loop of ``frames`` frames (its bars times the quantum)."""
        tl = self._tl
        assert tl is not None
        bars = self.bars_by_frames.get(frames)
        if bars is None:  # not announced: as many bars as fit at the current tempo
            bars = max(1, round(frames * tl.bpm / (60.0 * self.rate * tl.quantum)))
        return bars * tl.quantum

    def position(self, frames: int, pos: int | None, offset: int) -> int:
        """Where a loop of ``frames`` frames should be at frame ``offset`` of this block.

        ``pos``: where it is (None: a loop starting now). Within the tolerance
        the loop keeps its own position.
        """
        cycle = self._cycle(frames)
        beat = self._beat0 + offset * self._bpf
        target = int(round((beat % cycle) / cycle * frames)) % frames
        if pos is None:
            return target
        err = (target - pos + frames // 2) % frames - frames // 2
        if abs(err) <= self._tol:
            return pos
        self.corrections += 1
        return target

    def edge(self, offset: int) -> int:
        """Frames from frame ``offset`` of this block to the next bar line of the beat clock
        (0: this frame is the first one on or after a bar line). From the clock, not from a
        loop's position: a loop being put back on the grid may jump over its own bar lines."""
        tl = self._tl
        assert tl is not None
        phase = (self._beat0 + offset * self._bpf) % tl.quantum
        if phase < self._bpf:
            return 0
        return max(1, math.ceil((tl.quantum - phase) / self._bpf - 1e-9))
