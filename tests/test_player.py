"""LoopPlayer: exact gain maths, block timing, swaps, underruns, determinism.

Voices are constant signals on separate channels so the output *is* the gain
curve, which is compared with the closed forms in steerbridge.bridge.audio.loops.
"""

from __future__ import annotations

import math
import tracemalloc
import weakref

import numpy as np
import pytest

from steerbridge.bridge.audio.loops import equal_power, grid_gains, one_pole_ramp, prepare_loop
from steerbridge.bridge.audio.player import LoopPlayer
from steerbridge.bridge.audio.sinks import NullSink

RATE, BLOCK = 48000, 256


def const_loop(left: float, right: float, frames: int = 4800, key: str = ""):
    audio = np.empty((2, frames), np.float32)
    audio[0], audio[1] = left, right
    return prepare_loop(audio, source_rate=RATE, rate=RATE, key=key)


def ramp_loop(frames: int, key: str = "ramp"):
    x = (np.arange(frames, dtype=np.float32) + 1) / frames
    return prepare_loop(np.stack([x, -x]), source_rate=RATE, rate=RATE, key=key)


def settle(sink: NullSink, player: LoopPlayer, blocks: int = 40) -> np.ndarray:
    return sink.run_blocks(blocks, player.process)


def test_one_pole_smoothing_matches_closed_form_across_blocks():
    player, sink = LoopPlayer(rate=RATE, smoothing_s=0.010), NullSink(rate=RATE, blocksize=BLOCK)
    a = const_loop(1.0, 0.0, key="a")
    player.set_voices({a: 1.0}, scene="s")
    out = sink.run_blocks(3, player.process)
    expected = one_pole_ramp(0.0, 1.0, k=player.k, frames=3 * BLOCK)  # one curve, unbroken at block edges
    np.testing.assert_allclose(out[:, 0], expected, rtol=0, atol=2e-6)
    assert player.k == pytest.approx(1 - math.exp(-1 / (0.010 * RATE)))
    assert np.all(out[:, 1] == 0.0)
    # ~10 ms time constant: 63 % of the way after 480 samples
    assert out[479, 0] == pytest.approx(1 - math.exp(-1), abs=1e-3)


def test_knob_move_is_an_equal_power_crossfade_heard_at_the_next_block():
    player, sink = LoopPlayer(rate=RATE), NullSink(rate=RATE, blocksize=BLOCK)
    low, high = const_loop(1.0, 0.0, key="low"), const_loop(0.0, 1.0, key="high")
    player.set_voices({low: 1.0, high: 0.0}, scene="s")
    before = settle(sink, player)
    assert before[-1, 0] == 1.0 and before[-1, 1] == 0.0  # settled gains snap exactly

    g_low, g_high = equal_power(0.3)
    seq = player.set_voices({low: g_low, high: g_high}, scene="s")
    blocks_before = player.blocks
    out = sink.run_blocks(1, player.process)
    assert player.last_heard()[:2] == (seq, blocks_before)  # the very next block used it
    np.testing.assert_allclose(out[:, 0], one_pole_ramp(1.0, g_low, k=player.k, frames=BLOCK), atol=2e-6)
    np.testing.assert_allclose(out[:, 1], one_pole_ramp(0.0, g_high, k=player.k, frames=BLOCK), atol=2e-6)
    assert out[0, 0] < 1.0 and out[0, 1] > 0.0  # moving from the first sample of the block

    after = settle(sink, player)
    assert after[-1, 0] == np.float32(g_low) and after[-1, 1] == np.float32(g_high)
    assert g_low**2 + g_high**2 == pytest.approx(1.0, abs=1e-12)
    assert {loop.key: round(g, 12) for loop, g in player.gains().items()} == {
        "low": round(g_low, 12), "high": round(g_high, 12)}


def test_equal_power_and_grid_gains_keep_power():
    assert equal_power(0.0) == (1.0, 0.0) and equal_power(1.0) == (0.0, 1.0)
    assert equal_power(0.5) == pytest.approx((math.sqrt(0.5), math.sqrt(0.5)))
    assert equal_power(-3) == (1.0, 0.0)  # clamped
    gains = grid_gains([(1, 2, 0.25), (3, 4, 0.6)])
    assert set(gains) == {(1, 3), (1, 4), (2, 3), (2, 4)}
    assert sum(g * g for g in gains.values()) == pytest.approx(1.0)
    assert gains[(2, 4)] == pytest.approx(math.sin(0.25 * math.pi / 2) * math.sin(0.6 * math.pi / 2))
    assert grid_gains([(1, 2, 0.0), (0, 1, 1.0)]) == {(1, 1): 1.0}
    assert grid_gains([]) == {(): 1.0}


def test_new_scene_swaps_at_the_loop_boundary_with_equal_power_fade():
    player = LoopPlayer(rate=RATE, smoothing_s=0.0, fade_s=0.002)  # no smoothing: only the swap fade shapes it
    sink = NullSink(rate=RATE, blocksize=BLOCK)
    a, b = ramp_loop(1000, "a"), const_loop(0.5, 0.5, frames=1000, key="b")
    player.set_voices({a: 1.0}, scene="A")
    out = sink.run_blocks(2, player.process)  # 512 frames into A's 1000-frame loop
    player.set_voices({b: 1.0}, scene="B", swap="boundary")
    out = np.concatenate([out, sink.run_blocks(4, player.process)])
    a_left = a.planar()[0]
    np.testing.assert_array_equal(out[:1000, 0], a_left)  # A plays to its end untouched
    f = player.fade_frames
    t = (np.arange(f) + 0.5) / f
    expected = a_left[:f] * np.cos(t * np.pi / 2).astype(np.float32) + 0.5 * np.sin(t * np.pi / 2).astype(np.float32)
    np.testing.assert_allclose(out[1000:1000 + f, 0], expected, atol=1e-6)
    assert np.all(out[1000 + f:, 0] == 0.5)
    assert player.stats().scene == "B"


def test_swap_now_starts_the_fade_at_the_next_block():
    player = LoopPlayer(rate=RATE, smoothing_s=0.0, fade_s=0.001)
    sink = NullSink(rate=RATE, blocksize=BLOCK)
    a, b = const_loop(1.0, 1.0, frames=10_000), const_loop(-1.0, -1.0, frames=7_000)
    player.set_voices({a: 1.0}, scene="A")
    sink.run_blocks(3, player.process)
    player.set_voices({b: 1.0}, scene="B", swap="now")
    out = sink.run_blocks(1, player.process)
    assert out[0, 0] == pytest.approx(math.cos(0.5 / player.fade_frames * math.pi / 2) - math.sin(
        0.5 / player.fade_frames * math.pi / 2), abs=1e-6)
    assert np.all(out[player.fade_frames:, 0] == -1.0)


def test_underruns_are_zero_filled_and_counted():
    player = LoopPlayer(rate=RATE)
    garbage = np.full((BLOCK, 2), 7.0, np.float32)
    for _ in range(3):
        player.process(garbage)
        assert not garbage.any()
        garbage.fill(7.0)
    stats = player.stats()
    assert (stats.underruns, stats.underrun_frames, stats.blocks) == (3, 3 * BLOCK, 3)
    player.set_voices({const_loop(1.0, 1.0): 1.0}, scene="s")
    player.process(garbage)
    assert player.stats().underruns == 3 and garbage[-1, 0] > 0


def test_stop_fades_out_then_freezes_position_and_play_resumes():
    player, sink = LoopPlayer(rate=RATE), NullSink(rate=RATE, blocksize=BLOCK)
    player.set_voices({const_loop(1.0, 1.0, frames=48000): 1.0}, scene="s")
    settle(sink, player)
    player.stop()
    out = settle(sink, player)
    np.testing.assert_allclose(out[:BLOCK, 0], one_pole_ramp(1.0, 0.0, k=player.k, frames=BLOCK), atol=2e-6)
    assert np.all(out[-BLOCK:] == 0.0)
    pos = player.stats().position_s
    settle(sink, player, 5)
    assert player.stats().position_s == pos and player.stats().underruns == 0
    player.play()
    assert sink.run_blocks(1, player.process)[-1, 0] > 0 and player.stats().position_s > pos


def test_short_loops_wrap_inside_one_block():
    player = LoopPlayer(rate=RATE, smoothing_s=0.0)
    loop = ramp_loop(100)
    player.set_voices({loop: 1.0}, scene="s")
    out = NullSink(rate=RATE, blocksize=BLOCK).run_blocks(1, player.process)
    np.testing.assert_array_equal(out[:, 0], np.tile(loop.planar()[0], 3)[:BLOCK])


def schedule_run(events: dict[int, tuple[str, float]]) -> np.ndarray:
    rng = np.random.default_rng(7)
    loops = [prepare_loop(rng.standard_normal((2, 24000)).astype(np.float32) * 0.1, source_rate=24000,
                          rate=RATE, key=i) for i in range(3)]
    other = prepare_loop(rng.standard_normal((2, 12000)).astype(np.float32) * 0.1, source_rate=24000, rate=RATE)
    player, sink = LoopPlayer(rate=RATE), NullSink(rate=RATE, blocksize=BLOCK)
    chunks = []
    for block in range(120):
        if block in events:
            kind, w = events[block]
            if kind == "knob":
                g0, g1 = equal_power(w)
                player.set_voices({loops[0]: g0, loops[1]: g1}, scene="s")
            elif kind == "exact":
                player.set_voices({loops[2]: 1.0}, scene="s")
            else:
                player.set_voices({other: 1.0}, scene="t", swap="now" if w else "boundary")
        chunks.append(sink.run_blocks(1, player.process))
    return np.concatenate(chunks)


def test_null_sink_renders_bit_identical_mixes_for_the_same_schedule():
    events = {0: ("knob", 0.0), 10: ("knob", 0.4), 11: ("knob", 0.9), 30: ("exact", 0), 60: ("scene", 0),
              100: ("scene", 1)}
    first, second = schedule_run(events), schedule_run(events)
    assert np.array_equal(first, second)
    assert np.abs(first).max() > 0.05
    assert not np.array_equal(first, schedule_run({**events, 11: ("knob", 0.8)}))


def test_callback_allocates_no_buffers():
    block = 4096  # any per-block temporary would be >= 32 KB here
    player = LoopPlayer(rate=RATE, max_block=block)
    a, b = const_loop(1.0, 0.0, 48000), const_loop(0.0, 1.0, 48000)
    out = np.zeros((block, 2), np.float32)
    player.set_voices({a: 1.0}, scene="s")
    player.process(out)
    player.set_voices({a: 0.6, b: 0.8}, scene="s")  # gains ramping: the busiest path
    player.set_voices({const_loop(0.5, 0.5, 24000): 1.0}, scene="t", swap="now")  # and a crossfade
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            player.process(out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - base < 8192, f"process() allocated {peak - base} bytes at peak"


class _FreedIn:
    """Records, for each watched object, whether it was freed inside ``process`` (the callback)."""

    def __init__(self, player: LoopPlayer) -> None:
        self.in_callback, self.freed = False, []
        self.player, self._process = player, player.process

    def process(self, out: np.ndarray) -> None:
        self.in_callback = True
        try:
            self._process(out)
        finally:
            self.in_callback = False

    def watch(self, obj: object, name: str) -> None:
        weakref.finalize(obj, lambda: self.freed.append((name, self.in_callback)))


def test_callback_frees_nothing_when_a_fading_deck_is_replaced_or_a_fading_loop_evicted():
    block = 4096  # any per-block temporary would be >= 32 KB here
    player = LoopPlayer(rate=RATE, max_block=block, fade_s=0.2)  # a swap fade many blocks long
    spy, out = _FreedIn(player), np.zeros((block, 2), np.float32)
    a1, a2, a3 = const_loop(1.0, 0.0, 48000), const_loop(0.0, 1.0, 48000), const_loop(0.3, 0.3, 48000)
    player.set_voices({a1: 1.0}, scene="A")
    spy.process(out)
    player.set_voices({const_loop(0.5, 0.5, 24000): 1.0}, scene="B", swap="now")  # A starts fading out
    spy.process(out)
    assert player._old is not None and player._old.scene == "A"
    # Coming back to A while its deck fades out: a fresh deck replaces the fading one in the
    # player's books; and the voice bank evicts a1 (the test holds the only other reference).
    player.set_voices({a2: 1.0}, scene="A", swap="now")
    spy.watch(player._old.target, "fading deck")  # its arrays go when the deck goes
    spy.watch(a1, "loop of the fading deck")
    del a1
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(6):  # the fade from A ends in here (the callback lets go of the old deck), then A2 fades in
            spy.process(out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - base < 8192, f"process() allocated {peak - base} bytes at peak"
    assert player._cur.scene == "A" and player.gains()[a2] > 0.5
    player.set_voices({a3: 1.0}, scene="A")  # a2 fades out by gain ...
    spy.watch(a2, "loop fading by gain")
    del a2  # ... and the voice bank evicts it meanwhile
    spy.process(out)
    player.set_voices({const_loop(0.2, 0.2, 24000): 1.0}, scene="C", swap="now")  # A (with a2) fades out
    for _ in range(12):
        spy.process(out)
        player.reap()  # a control thread reaps between blocks, as the session's housekeeping does
    assert {name for name, _ in spy.freed} == {"fading deck", "loop of the fading deck", "loop fading by gain"}
    assert all(not inside for _, inside in spy.freed), f"freed inside the callback: {spy.freed}"


def test_bad_voices_are_refused_with_the_fix():
    player = LoopPlayer(rate=RATE)
    with pytest.raises(ValueError, match="one length"):
        player.set_voices({const_loop(1, 1, 100): 1.0, const_loop(1, 1, 200): 1.0}, scene="s")
    wrong_rate = prepare_loop(np.zeros((2, 100), np.float32), source_rate=44100, rate=44100)
    with pytest.raises(ValueError, match="prepare_loop\\(rate=48000\\)"):
        player.set_voices({wrong_rate: 1.0}, scene="s")
    with pytest.raises(ValueError, match="gains must be finite"):
        player.set_voices({const_loop(1, 1): -0.5}, scene="s")
    player.set_voices({const_loop(1, 1, 100): 1.0}, scene="s")
    with pytest.raises(ValueError, match="new scene"):
        player.set_voices({const_loop(1, 1, 200): 1.0}, scene="s")


def test_prepare_loop_resamples_with_soxr_and_interleaves():
    sr = 44100
    t = np.arange(sr) / sr
    mono = np.sin(2 * np.pi * 1000 * t).astype(np.float32)[None, :]
    loop = prepare_loop(mono, source_rate=sr, rate=RATE)
    assert loop.frames == RATE and loop.data.dtype == np.float32 and not loop.data.flags.writeable
    left, right = loop.planar()
    assert np.array_equal(left, right)  # mono duplicated, interleaved L R L R
    spectrum = np.abs(np.fft.rfft(left))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over one second: the tone stays at 1 kHz
    with pytest.raises(ValueError, match="3 channels but the output has 2"):
        prepare_loop(np.zeros((3, 10), np.float32), source_rate=sr, rate=RATE)
