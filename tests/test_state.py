"""ControlState: clamping, versions, immutable snapshots, listeners, thread safety."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from steerbridge.bridge.control.state import Change, ControlState
from steerbridge.bridge.presets.model import load_preset

DEMO = Path(__file__).resolve().parent.parent / "presets" / "tiny.toml"


@pytest.fixture()
def state() -> ControlState:
    return ControlState(load_preset(DEMO))


def test_defaults_come_from_the_preset(state: ControlState) -> None:
    snap = state.snapshot()
    preset = snap.preset
    assert snap.version == 0 and snap.prompt == preset.scene.prompt and snap.seed == preset.scene.seed
    for knob in preset.knobs:
        assert snap.knobs[knob.name].value == knob.default
        assert snap.knobs[knob.name].alpha == knob.alpha_for(knob.default)


def test_set_value_clamps_and_maps_alpha(state: ControlState) -> None:
    assert state.set_value("mood", 1.7) == 1.0
    assert state.snapshot().knobs["mood"].alpha == 4.0
    state.set_value("mood", 0.25)
    assert state.snapshot().alphas()["mood"] == -2.0  # -4 + 0.25 * 8
    assert state.set_alpha("mood", 99.0) == 4.0 and state.value("mood") == 1.0
    state.set_alpha("mood", 2.0)
    assert state.value("mood") == 0.75


def test_versions_and_immutable_snapshots(state: ControlState) -> None:
    before = state.snapshot()
    assert state.snapshot() is before  # cached until something changes
    state.set_value("mood", 0.9)
    after = state.snapshot()
    assert after.version == before.version + 1 and before.knobs["mood"].value == 0.5
    with pytest.raises(TypeError):
        after.knobs["mood"] = None  # type: ignore[index]
    state.set_value("mood", 0.9)  # same value: no new version
    assert state.version == after.version


def test_listeners_get_changes_and_can_be_removed(state: ControlState) -> None:
    seen: list[Change] = []
    remove = state.add_listener(seen.append)
    state.set_value("tempo", 0.0, source="osc")
    state.set_prompt("dark techno")
    state.set_seed(9)
    state.set_playing(True)
    state.arm_learn("mood")
    remove()
    state.set_seed(10)
    assert [(c.kind, c.name) for c in seen] == [("knob", "tempo"), ("prompt", None), ("seed", None),
                                                 ("playing", None), ("learn", "mood")]
    assert seen[0].alpha == -4.0 and seen[0].source == "osc" and seen[0].version == 1
    assert [c.version for c in seen] == [1, 2, 3, 4, 5]


def test_a_failing_listener_does_not_break_the_writer(state: ControlState) -> None:
    state.add_listener(lambda change: 1 / 0)
    state.set_value("mood", 0.1)
    assert state.value("mood") == 0.1


@pytest.mark.parametrize("call, message", [
    (lambda s: s.set_value("nope", 0.5), "no knob named 'nope'; knobs: mood, tempo, brightness"),
    (lambda s: s.set_seed(-1), "out of range"),
    (lambda s: s.set_prompt("  "), "prompt is empty"),
    (lambda s: s.set_seconds(0), "out of range"),
    (lambda s: s.set_bpm(10), "tempo 10 BPM is out of range"),
    (lambda s: s.set_loop_tempo(4.0, 500.0), "tempo 500.0 BPM is out of range"),
    (lambda s: s.arm_learn("nope"), "no knob named 'nope'"),
])
def test_bad_values_are_refused_with_a_reason(state: ControlState, call, message: str) -> None:
    with pytest.raises((KeyError, ValueError), match=message):
        call(state)
    assert state.version == 0


def test_replace_preset_keeps_positions_load_preset_resets(state: ControlState) -> None:
    state.set_value("mood", 0.8)
    preset = state.snapshot().preset
    state.replace_preset(preset)
    assert state.value("mood") == 0.8 and state.snapshot().knobs["mood"].alpha == pytest.approx(2.4)
    state.load_preset(preset)
    assert state.value("mood") == 0.5


def test_concurrent_writers_lose_no_versions(state: ControlState) -> None:
    def writer(name: str) -> None:
        for i in range(500):
            state.set_value(name, (i + 1) / 1000)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("mood", "tempo", "brightness")]
    for t in threads:
        t.start()
    got = state.wait_for_change(0, timeout=5)
    for t in threads:
        t.join()
    assert got >= 1
    assert state.version == 1500
    snap = state.snapshot()
    assert snap.values() == {"mood": 0.5, "tempo": 0.5, "brightness": 0.5}  # each writer's last value


def test_loop_length_and_tempo_change_together(state: ControlState) -> None:
    seen = []
    state.add_listener(lambda c: seen.append((c.kind, c.value, state.snapshot().seconds, state.snapshot().bpm)))
    state.set_loop_tempo(3.2, 150.0, source="link")
    # each listener already sees both: no snapshot has the new length at the old tempo
    assert [(kind, s, b) for kind, _, s, b in seen] == [("bpm", 3.2, 150.0), ("seconds", 3.2, 150.0)]
    state.set_bpm(None)
    assert state.snapshot().bpm is None and state.snapshot().seconds == 3.2


def test_a_tempo_knob_is_the_scenes_tempo() -> None:
    from dataclasses import replace

    from steerbridge.bridge.presets.model import Knob

    base = load_preset(DEMO)
    preset = replace(base, knobs=base.knobs + (Knob(name="bpm", target="bpm", alpha_min=70.0, alpha_max=160.0),))
    state = ControlState(preset)
    assert state.snapshot().bpm == 115.0  # the knob's default position
    state.set_value("bpm", 1.0, source="midi")
    assert state.snapshot().bpm == 160.0
    seen = []
    state.add_listener(seen.append)
    state.set_loop_tempo(2.0, 97.0, source="link")  # the band's tempo moves the knob
    snap = state.snapshot()
    assert snap.bpm == snap.knobs["bpm"].alpha == 97.0 and snap.seconds == 2.0
    assert [(c.kind, c.name, c.source) for c in seen] == [("knob", "bpm", "link"), ("seconds", None, "link")]
    state.set_bpm(400.0)  # outside the knob's range: the nearest tempo it has
    assert state.snapshot().bpm == 160.0 == state.snapshot().knobs["bpm"].alpha
