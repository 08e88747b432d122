"""VoiceBank: which loops at which gains for the knob values of the moment (axis crossfades, bounded voices)."""

from __future__ import annotations

import numpy as np
import pytest

from steerbridge.bridge.audio.loops import equal_power
from steerbridge.bridge.live.axes import MAX_AXES, axis_plan
from steerbridge.bridge.live.scheduler import LoopReady
from steerbridge.bridge.live.voicebank import VoiceBank
from steerbridge.bridge.presets.model import Knob

MOOD = Knob(name="mood", vector="m.safetensors", alpha_min=-4.0, alpha_max=4.0, stops=5)
TEMPO = Knob(name="tempo", vector="t.safetensors", alpha_min=0.0, alpha_max=2.0, stops=3)


def ready(scene="A", *, exact=False, alphas=None, samples=1600, rate=16000) -> LoopReady:
    audio = np.full((2, samples), 0.1, np.float32)
    return LoopReady(key="k", exact=exact, stops=None, alphas=alphas or {"mood": 0.0}, scene=(scene,),
                     version=1, audio=audio, sample_rate=rate, from_cache=False)


def keyed(gains):
    return {loop.key: g for loop, g in gains.items()}


def test_loops_are_resampled_to_the_device_rate_once_and_keyed_by_stop_or_alpha():
    bank = VoiceBank(rate=48000)
    scene, loop, new = bank.add(ready(alphas={"mood": 0.0}), (MOOD,))
    assert new and loop.rate == 48000 and loop.frames == 4800 and loop.key == (2,)  # alpha 0 is stop 2 of 5
    _, loop, new = bank.add(ready(alphas={"mood": 0.7}, exact=True), (MOOD,))
    assert new is False and loop.key == (0.7,)  # between stops: the alpha itself


def test_equal_power_between_the_stops_around_the_knob():
    bank = VoiceBank(rate=16000)
    for a in MOOD.stop_alphas():
        scene, _, _ = bank.add(ready(alphas={"mood": a}), (MOOD,))
    value = 0.6  # stops at 0, .25, .5, .75, 1 -> between stop 2 and 3, 40 % of the way
    gains = keyed(bank.gains(scene, (MOOD,), {"mood": value}, {"mood": MOOD.alpha_for(value)}))
    low, high = equal_power(0.4)
    assert gains == {(2,): pytest.approx(low), (3,): pytest.approx(high)}


def _render_plan(bank, knobs, values, *, scene="A"):
    """Deliver what the scheduler's plan for ``values`` would: the exact point, then each knob's axis."""
    alphas = [k.alpha_for(v) for k, v in zip(knobs, values)]
    for ap in axis_plan(knobs, values, alphas, depth="full"):
        got = bank.add(ready(scene, exact=ap.axis is None, alphas=dict(zip((k.name for k in knobs), ap.alphas))),
                       knobs)
    return got[0]


def test_one_knob_moved_crossfades_along_its_axis_with_the_others_at_the_exact_render():
    knobs = (MOOD, TEMPO)
    bank = VoiceBank(rate=16000)
    scene = _render_plan(bank, knobs, [0.5, 0.25])  # exact at mood 0.0, tempo 0.5
    values = {"mood": 0.6, "tempo": 0.25}
    gains = keyed(bank.gains(scene, knobs, values, {"mood": MOOD.alpha_for(0.6), "tempo": 0.5}, ("mood",)))
    low, high = equal_power(0.4)
    assert gains == {(2, 0.5): pytest.approx(low), (3, 0.5): pytest.approx(high)}  # tempo stays at its render
    assert sum(g * g for g in gains.values()) == pytest.approx(1.0)


def test_two_knobs_moved_share_the_power_by_distance_and_voices_stay_bounded():
    knobs = tuple(Knob(name=f"k{i}", vector="v.safetensors", alpha_min=-1.0, alpha_max=1.0, stops=5)
                  for i in range(16))
    bank = VoiceBank(rate=16000)
    values = [0.5] * 16
    scene = _render_plan(bank, knobs, values)
    names = [k.name for k in knobs]
    moved = dict(zip(names, values))
    moved.update(k3=0.6, k7=0.8)  # k3 moved 0.1 from its render, k7 0.3
    alphas = {n: knobs[i].alpha_for(moved[n]) for i, n in enumerate(names)}
    gains = bank.gains(scene, knobs, moved, alphas, ("k7", "k3"))
    by_axis = {}
    for loop, g in gains.items():
        off = [i for i, item in enumerate(loop.key) if item != 2]
        by_axis.setdefault(off[0] if off else None, 0.0)
        by_axis[off[0] if off else None] += g * g
    assert set(by_axis) <= {3, 7, None} and sum(by_axis.values()) == pytest.approx(1.0)
    # power share by distance: k3 gets 0.1/0.4 of it, k7 0.3/0.4 (the exact render sits on both axes)
    k3 = equal_power(0.4)  # 0.6 lies 40 % from stop 2 to stop 3
    assert by_axis[3] == pytest.approx(0.25 * k3[1] ** 2)
    # all 16 knobs moved: still at most 2 * MAX_AXES voices
    swept = {n: 0.55 for n in names}
    many = bank.gains(scene, knobs, swept, {n: knobs[i].alpha_for(0.55) for i, n in enumerate(names)}, names[::-1])
    assert 0 < len(many) <= 2 * MAX_AXES and sum(g * g for g in many.values()) == pytest.approx(1.0)


def test_exact_render_wins():
    bank = VoiceBank(rate=16000)
    knobs = (MOOD, TEMPO)
    scene, _, _ = bank.add(ready(alphas={"mood": 0.0, "tempo": 0.0}), knobs)
    bank.add(ready(alphas={"mood": 2.0, "tempo": 0.0}), knobs)
    values, alphas = {"mood": 0.6, "tempo": 0.25}, {"mood": 0.8, "tempo": 0.5}
    assert bank.gains(scene, knobs, values, alphas)  # something plays before the exact render lands
    bank.add(ready(exact=True, alphas=alphas), knobs)
    assert keyed(bank.gains(scene, knobs, values, alphas)) == {(0.8, 0.5): 1.0}


def test_nearest_loop_when_no_stop_is_there_and_nothing_for_other_knobs():
    bank = VoiceBank(rate=16000)
    scene, _, _ = bank.add(ready(exact=True, alphas={"mood": 3.0}), (MOOD,))
    bank.add(ready(alphas={"mood": -4.0}), (MOOD,))
    assert keyed(bank.gains(scene, (MOOD,), {"mood": 0.8}, {"mood": 2.4})) == {(3.0,): 1.0}
    assert bank.gains(scene, (TEMPO,), {"tempo": 0.5}, {"tempo": 1.0}) == {}


def test_newest_scene_is_latest_and_old_scenes_and_points_are_bounded():
    bank = VoiceBank(rate=16000, keep_points=3, keep_exact=2, keep_scenes=2)
    for i in range(4):
        bank.add(ready(exact=True, alphas={"mood": float(i) + 0.5}))
    assert list(bank.latest.exact) == [(2.5,), (3.5,)] and list(bank.latest.points) == [(1.5,), (2.5,), (3.5,)]
    bank.add(ready("B", alphas={"mood": 0.0}))
    bank.add(ready("C", alphas={"mood": 0.0}))
    assert bank.latest.scene == ("C",)
    assert bank.add(ready("A", alphas={"mood": 1.0}))[2] is True  # A was dropped: it comes back as a new scene
