"""VoiceBank: which loops at which gains for the knob values of the moment."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steerbridge.bridge.audio.loops import equal_power
from steerbridge.bridge.live.scheduler import LoopReady
from steerbridge.bridge.live.voicebank import VoiceBank
from steerbridge.bridge.presets.model import Knob

MOOD = Knob(name="mood", vector="m.safetensors", alpha_min=-4.0, alpha_max=4.0, stops=5)
TEMPO = Knob(name="tempo", vector="t.safetensors", alpha_min=0.0, alpha_max=2.0, stops=3)


def ready(scene="A", *, stops=None, exact=False, alphas=None, samples=1600, rate=16000) -> LoopReady:
    audio = np.full((2, samples), 0.1, np.float32)
    return LoopReady(key="k", exact=exact, stops=stops, alphas=alphas or {"mood": 0.0}, scene=(scene,),
                     version=1, audio=audio, sample_rate=rate, from_cache=False)


def keyed(gains):
    return {loop.key: g for loop, g in gains.items()}


def test_loops_are_resampled_to_the_device_rate_once():
    bank = VoiceBank(rate=48000)
    scene, loop, new = bank.add(ready(stops=(2,)))
    assert new and loop.rate == 48000 and loop.frames == 4800 and loop.key == (2,)
    assert bank.add(ready(stops=(3,)))[2] is False  # same scene


def test_equal_power_between_the_stops_around_the_knob():
    bank = VoiceBank(rate=16000)
    for i in range(5):
        scene, _, _ = bank.add(ready(stops=(i,), alphas={"mood": MOOD.stop_alphas()[i]}))
    value = 0.6  # stops at 0, .25, .5, .75, 1 -> between stop 2 and 3, 40 % of the way
    gains = keyed(bank.gains(scene, (MOOD,), {"mood": value}, {"mood": MOOD.alpha_for(value)}))
    low, high = equal_power(0.4)
    assert gains == {(2,): pytest.approx(low), (3,): pytest.approx(high)}


def test_exact_render_wins_and_missing_corners_are_rescaled():
    bank = VoiceBank(rate=16000)
    scene, _, _ = bank.add(ready(stops=(2, 0), alphas={"mood": 0.0, "tempo": 0.0}))
    bank.add(ready(stops=(3, 0), alphas={"mood": 2.0, "tempo": 0.0}))
    knobs = (MOOD, TEMPO)
    values, alphas = {"mood": 0.6, "tempo": 0.25}, {"mood": 0.8, "tempo": 0.5}
    gains = bank.gains(scene, knobs, values, alphas)  # corners (2|3, 0|1): the tempo=1 ones are missing
    assert sum(g * g for g in gains.values()) == pytest.approx(1.0)
    assert keyed(gains)[(2, 0)] / keyed(gains)[(3, 0)] == pytest.approx(math.cos(0.2 * math.pi) / math.sin(0.2 * math.pi))
    bank.add(ready(exact=True, alphas=alphas))
    assert keyed(bank.gains(scene, knobs, values, alphas)) == {(0.8, 0.5): 1.0}


def test_nearest_loop_when_no_corner_is_there_and_nothing_for_other_knobs():
    bank = VoiceBank(rate=16000)
    scene, _, _ = bank.add(ready(exact=True, alphas={"mood": 3.0}))
    bank.add(ready(stops=(0,), alphas={"mood": -4.0}))
    assert keyed(bank.gains(scene, (MOOD,), {"mood": 0.8}, {"mood": 2.4})) == {(3.0,): 1.0}
    assert bank.gains(scene, (TEMPO,), {"tempo": 0.5}, {"tempo": 1.0}) == {}


def test_newest_scene_is_latest_and_old_scenes_and_exacts_are_bounded():
    bank = VoiceBank(rate=16000, keep_exact=2, keep_scenes=2)
    for i in range(4):
        bank.add(ready(exact=True, alphas={"mood": float(i)}))
    assert list(bank.latest.exact) == [(2.0,), (3.0,)]
    bank.add(ready("B", stops=(0,)))
    bank.add(ready("C", stops=(0,)))
    assert bank.latest.scene == ("C",)
    assert bank.add(ready("A", stops=(1,)))[2] is True  # A was dropped: it comes back as a new scene
