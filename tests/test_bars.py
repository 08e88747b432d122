"""Bars in samples and the player led by a beat clock (no Link here: a synthetic Timeline and clock).

The null sink's blocks are timed by a fake clock that advances one block per
callback, so the expected frame of every bar line is known exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from steerbridge.bridge.audio.bars import BarSync, BlockClock, Timeline, bar_frames, bar_seconds, fit_loop
from steerbridge.bridge.audio.loops import prepare_loop
from steerbridge.bridge.audio.player import LoopPlayer
from steerbridge.bridge.audio.sinks import NullSink

RATE, BLOCK = 48000, 256


def click_loop(frames: int, key: str = "click", level: float = 0.0):
    """A loop at ``level`` with a full-scale click on its first frame (its start is visible)."""
    audio = np.full((2, frames), level, np.float32)
    audio[:, 0] = 1.0
    return prepare_loop(audio, source_rate=RATE, rate=RATE, key=key)


def rig(bpm: float, *, latency_blocks: int = 2, **timeline):
    player = LoopPlayer(rate=RATE, fade_s=0.001)
    ticks = iter(range(10**9))
    sync = BarSync(player, rate=RATE, blocksize=BLOCK, latency_s=latency_blocks * BLOCK / RATE,
                   now=lambda: next(ticks) * BLOCK / RATE)
    sync.timeline = Timeline(origin=0.0, beat=0.0, bpm=bpm, **timeline)
    return player, sync, NullSink(rate=RATE, blocksize=BLOCK)


def test_two_bars_at_97_bpm_are_exactly_two_bars_in_samples():
    seconds = bar_seconds(2, 97.0)
    assert seconds == pytest.approx(480 / 97)
    assert bar_frames(2, 97.0, 48000) == round(2 * 4 * 60 * 48000 / 97) == 237526
    assert bar_frames(2, 97.0, 44100) == 218227
    long = click_loop(237600)
    assert fit_loop(long, 237526).frames == 237526
    short = fit_loop(click_loop(237000), 237526)
    assert short.frames == 237526 and np.all(short.planar()[:, 237000:] == 0.0)
    with pytest.raises(ValueError, match="Link's range"):
        bar_frames(2, 5.0, 48000)
    with pytest.raises(ValueError, match="at least one bar"):
        bar_seconds(0, 120.0)


def test_block_clock_takes_the_lower_envelope_of_late_callbacks():
    clock = BlockClock(rate=RATE, blocksize=BLOCK)
    period = BLOCK / RATE
    late = [0.0, 0.004, 0.0001, 0.002, 0.0]
    got = [clock.block_start(10.0 + i * period + d, BLOCK) for i, d in enumerate(late)]
    assert got == pytest.approx([10.0 + i * period for i in range(len(late))], abs=1e-9)
    # an xrun: blocks went missing, every later callback is 20 ms late against the old line
    start = 10.0 + len(late) * period
    got = [clock.block_start(start + i * period + 0.020, BLOCK) for i in range(12)]
    assert clock.jumps == 1
    assert got[-1] == pytest.approx(start + 11 * period + 0.020, abs=1e-9)


def test_loop_starts_fall_on_bar_lines_and_a_late_start_joins_mid_loop():
    bpm = 97.0
    player, sync, sink = rig(bpm, latency_blocks=3)
    frames = bar_frames(2, bpm, RATE)
    sync.bars_by_frames = {frames: 2}
    sink.run_blocks(50, sync.process)  # the loop arrives mid-bar, ~0.27 s in
    player.set_voices({click_loop(frames): 1.0}, scene="a")
    out = sink.run_blocks(int(3.2 * frames / BLOCK), sync.process)
    clicks = np.flatnonzero(out[:, 0] > 0.5)
    assert len(clicks) == 3
    heard = (50 * BLOCK + clicks) / RATE + sync.latency_s
    beats = heard * bpm / 60
    # every loop start on a 2-bar line of the clock, to the frame
    np.testing.assert_allclose(beats / 8, np.round(beats / 8), atol=1.5 / RATE * bpm / 60 / 8)
    assert np.all(np.round(beats / 8) >= 1)  # the first start waited for its line: it joined mid-loop


def test_drift_within_the_tolerance_runs_free_and_beyond_it_is_put_back():
    bpm = 120.0
    player, sync, sink = rig(bpm)
    frames = bar_frames(1, bpm, RATE)
    sync.bars_by_frames = {frames: 1}
    player.set_voices({click_loop(frames): 1.0}, scene="a")
    sink.run_blocks(400, sync.process)
    assert sync.corrections == 0
    tl = sync.timeline
    sync.timeline = Timeline(tl.origin, tl.beat + 0.01, bpm)  # the band's clock jumps by 5 ms
    out = sink.run_blocks(400, sync.process)
    assert sync.corrections == 1
    clicks = np.flatnonzero(out[:, 0] > 0.5)
    heard = (400 * BLOCK + clicks) / RATE + sync.latency_s
    beats = heard * bpm / 60 + 0.01
    np.testing.assert_allclose(beats / 4, np.round(beats / 4), atol=1.5 / RATE * 2 / 4)


def test_scene_swap_waits_for_the_next_bar_line_not_the_loop_end():
    bpm = 120.0
    player, sync, sink = rig(bpm, latency_blocks=0)
    frames = bar_frames(4, bpm, RATE)  # a 4-bar loop: its end is 4 bars away, a bar line at most one
    bar = frames // 4
    sync.bars_by_frames = {frames: 4}
    a, b = click_loop(frames, "a", level=0.25), click_loop(frames, "b", level=0.75)
    player.set_voices({a: 1.0}, scene="a")
    sink.run_blocks(40, sync.process)  # a plays (0.2 s in: in bar 1)
    player.set_voices({b: 1.0}, scene="b")
    out = sink.run_blocks(int(1.2 * bar / BLOCK), sync.process)
    first_b = 40 * BLOCK + int(np.flatnonzero(out[:, 0] > 0.5)[0])
    assert first_b - bar < 0.0015 * RATE and first_b >= bar  # the crossfade starts on bar line 1, not 4


def test_transport_starts_and_stops_on_the_quantum():
    bpm = 120.0
    player, sync, sink = rig(bpm, latency_blocks=0, playing=False)
    frames = bar_frames(1, bpm, RATE)
    player.set_voices({click_loop(frames, level=0.5): 1.0}, scene="a")
    out = sink.run_blocks(100, sync.process)
    assert np.all(out == 0.0)  # stopped: silence
    tl = sync.timeline
    sync.timeline = Timeline(tl.origin, tl.beat, bpm, 4.0, True, switch_beat=8.0)  # start at bar 3
    out = sink.run_blocks(int(5 * RATE / BLOCK), sync.process)
    start = int(np.flatnonzero(np.abs(out[:, 0]) > 0)[0]) + 100 * BLOCK
    assert start == math.ceil(8 * 60 / bpm * RATE)
    sync.timeline = Timeline(tl.origin, tl.beat, bpm, 4.0, False, switch_beat=12.0)
    out2 = sink.run_blocks(int(2 * RATE / BLOCK), sync.process)
    t0 = 100 * BLOCK + len(out)
    silent = np.flatnonzero(np.abs(out2[:, 0]) == 0)
    assert silent[0] + t0 == math.ceil(12 * 60 / bpm * RATE) + round(0.003 * RATE) - 1  # a 3 ms fade
    assert np.all(out2[silent[0]:] == 0.0)


def test_a_stop_before_a_pending_start_lands_cancels_it():
    bpm = 120.0
    player, sync, sink = rig(bpm, latency_blocks=0, playing=False)
    player.set_voices({click_loop(bar_frames(1, bpm, RATE), level=0.5): 1.0}, scene="a")
    sink.run_blocks(10, sync.process)
    tl = sync.timeline
    sync.timeline = Timeline(tl.origin, tl.beat, bpm, 4.0, True, switch_beat=4.0, before=False)  # start at bar 2
    sink.run_blocks(10, sync.process)
    # asked to stop before bar 2: the transport there is "stopped" both before and after
    sync.timeline = Timeline(tl.origin, tl.beat, bpm, 4.0, False, switch_beat=4.0,
                             before=sync.timeline.playing_at(0.5))
    out = sink.run_blocks(int(3 * RATE / BLOCK), sync.process)
    assert np.all(out == 0.0)
