"""SessionMonitor (what the panel shows) on a fake session: exact numbers, no Qt, no engine."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from steerbridge.bridge.audio.player import LoopPlayer
from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.live.monitor import KNOB_HEARD, KNOB_IDLE, KNOB_PENDING, SessionMonitor
from steerbridge.bridge.live.session import SessionOptions
from steerbridge.bridge.presets.model import load_preset

PRESET = """\
[model]
source = "tiny"

[scene]
prompt = "x"

[[knob]]
name = "mood"
vector = "mood.safetensors"
alpha_min = -2.0
alpha_max = 2.0
stops = 3

[[knob]]
name = "tempo"
vector = "tempo.safetensors"
alpha_min = 0.0
alpha_max = 4.0
default = 0.0
stops = 2
"""


class FakeLoop:
    def __init__(self, key: tuple) -> None:
        self.key = key


class FakePlayer:
    def __init__(self) -> None:
        self.loops: dict[FakeLoop, float] = {}

    def targets(self) -> dict[FakeLoop, float]:
        return dict(self.loops)


@pytest.fixture()
def fake(tmp_path: Path) -> SimpleNamespace:
    (tmp_path / "p.toml").write_text(PRESET)
    state = ControlState(load_preset(tmp_path / "p.toml", check_files=False))
    now = [100.0]
    session = SimpleNamespace(state=state, player=FakePlayer(), client=None, scheduler=None, bank=None, sink=None,
                              options=SessionOptions())
    return SimpleNamespace(session=session, monitor=SessionMonitor(session, clock=lambda: now[0]), now=now)


def test_knob_status_heard_on_exact_or_on_stop_pending_in_a_crossfade(fake: SimpleNamespace) -> None:
    player, monitor, state = fake.session.player, fake.monitor, fake.session.state
    assert monitor.knob_status() == {"mood": KNOB_IDLE, "tempo": KNOB_IDLE}
    player.loops = {FakeLoop((1, 0)): 1.0}  # stop 1 of mood (alpha 0), stop 0 of tempo (alpha 0): the defaults
    assert monitor.knob_status() == {"mood": KNOB_HEARD, "tempo": KNOB_HEARD}
    state.set_value("mood", 0.6)  # between mood's stops 1 and 2; tempo untouched
    player.loops = {FakeLoop((1, 0)): 0.95, FakeLoop((2, 0)): 0.31}
    assert monitor.knob_status() == {"mood": KNOB_PENDING, "tempo": KNOB_HEARD}
    player.loops = {FakeLoop((state.snapshot().knobs["mood"].alpha, 0.0)): 1.0}  # the exact render landed
    assert monitor.knob_status() == {"mood": KNOB_HEARD, "tempo": KNOB_HEARD}
    player.loops = {FakeLoop((0.5, 0.0)): 1.0}  # an exact render for other alphas
    assert monitor.knob_status()["mood"] == KNOB_PENDING


def test_activity_is_seconds_since_the_last_change_from_each_source(fake: SimpleNamespace) -> None:
    state, monitor = fake.session.state, fake.monitor
    assert monitor.seconds_since("osc") == float("inf")
    state.set_value("mood", 0.7, source="osc")
    fake.now[0] += 0.25
    state.set_value("tempo", 0.2, source="midi")
    fake.now[0] += 0.5
    assert monitor.seconds_since("osc") == 0.75 and monitor.seconds_since("midi") == 0.5


def test_volume_survives_stop_and_play(fake: SimpleNamespace) -> None:
    state = fake.session.state
    player = LoopPlayer(rate=48000)
    fake.session.player = player
    # The session's own listener (registered before the monitor's) restarts the player at full gain.
    state.add_listener(lambda ch: (player.play if ch.value else player.stop)() if ch.kind == "playing" else None)
    monitor = SessionMonitor(fake.session)
    state.set_playing(True)
    assert monitor.set_volume(0.25) == 0.25 and player._master_target == 0.25
    state.set_playing(False)
    assert player._master_target == 0.0
    state.set_playing(True)
    assert player._master_target == 0.25
    assert monitor.set_volume(3.0) == 1.0
