"""The Qt panel end to end: a real Qt event loop (offscreen), the tiny model in-process, the null sink.

One panel (and one session) is shared by the tests of this module, which run
in file order: starting it loads the model and pre-renders the alpha stops.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("pytestqt")

import mido  # noqa: E402
from PyQt6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PyQt6.QtGui import QWheelEvent  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from steerbridge.bridge.audio.loops import equal_power  # noqa: E402
from steerbridge.bridge.control.midi.router import MidiRouter  # noqa: E402
from steerbridge.bridge.engine_link.client import InProcessClient  # noqa: E402
from steerbridge.bridge.engine_link.jobs import JobFailed  # noqa: E402
from steerbridge.bridge.live.session import SessionOptions  # noqa: E402
from steerbridge.bridge.presets.model import MidiBinding, load_preset  # noqa: E402
from steerbridge.gui.app import create_panel, settings_at  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET = """\
[model]
source = "tiny"
steps = 2

[scene]
prompt = "test loop with piano"
seed = 7
seconds = 1.0

[[knob]]
name = "mood"
vector = "vectors/tiny/mood.safetensors"
alpha_min = -2.0
alpha_max = 2.0
default = 0.5
stops = 3
midi = { channel = 1, cc = 74, mode = "7bit" }

[[knob]]
name = "tempo"
vector = "vectors/tiny/tempo.safetensors"
alpha_min = -2.0
alpha_max = 2.0
default = 0.5
stops = 2
"""
OTHER = """\
[model]
source = "tiny"
steps = 2

[scene]
prompt = "dark ambient drone"
seed = 3
seconds = 1.0

[[knob]]
name = "brightness"
vector = "vectors/tiny/brightness.safetensors"
alpha_min = 0.0
alpha_max = 6.0
curve = "exp"
default = 0.25
stops = 2
osc = "/fx/bright"

[[knob]]
name = "tempo"
vector = "vectors/tiny/tempo.safetensors"
alpha_min = -1.0
alpha_max = 1.0
default = 1.0
stops = 2
midi = { channel = 2, mode = "nrpn", nrpn = 300 }
"""


class FlakyClient(InProcessClient):
    """The in-process engine, except that every job fails while ``fail`` is set (like an OOM)."""

    fail = False

    def _send_job(self, ticket) -> None:  # type: ignore[no-untyped-def]
        if self.fail:
            failed = JobFailed(ticket.id, "the engine ran out of memory (test)", "OutOfMemoryError")
            threading.Thread(target=self._on_event, args=(failed,), daemon=True).start()
        else:
            super()._send_job(ticket)


def pump_until(app: QApplication, predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture(scope="module")
def panel(qapp, tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("gui")
    shutil.copytree(ROOT / "presets" / "vectors", folder / "vectors")
    (folder / "panel.toml").write_text(PRESET)
    clients: list[FlakyClient] = []

    def factory(preset):  # type: ignore[no-untyped-def]
        clients.append(FlakyClient(preset.model_source(), device=preset.model.device))
        return clients[-1]

    options = SessionOptions(output="null", osc=None, midi=None, engine="inprocess", progress=False)
    window = create_panel(folder / "panel.toml", options=options, settings=settings_at(folder / "settings.ini"),
                          client_factory=factory)
    window.ask_before_close = False
    window.show()
    assert pump_until(qapp, lambda: window.controller.phase in ("running", "failed"), 120)
    assert window.controller.phase == "running", window.banner.text()
    window.test_folder, window.test_clients = folder, clients  # type: ignore[attr-defined]
    yield window
    window.close()


def wheel(widget, notches: int) -> None:  # type: ignore[no-untyped-def]
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(), QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_panel_shows_one_card_per_knob_and_the_prerendered_loop(panel, qtbot) -> None:
    assert list(panel.cards) == ["mood", "tempo"]
    assert panel.cards["mood"].midi_label.text() == "ch1 CC74"
    assert panel.cards["tempo"].osc_label.text() == "/steer/knob/tempo"
    qtbot.waitUntil(lambda: panel.waveform._view is not None and panel.cards["mood"].light.accessibleDescription()
                    == "heard", timeout=10_000)
    # the exact render + each knob's two neighbouring stops along its axis (2 * K + 1, not the 3 x 2 grid)
    assert panel.status.progress.value() == panel.status.progress.maximum() == 5
    assert panel.windowTitle() == "panel.toml — steerbridge"


def test_turning_a_knob_sets_the_alpha_crossfades_at_once_then_the_exact_render_lands(panel, qtbot) -> None:
    session, card = panel.controller.session, panel.cards["mood"]
    mood, tempo = session.preset.knob("mood"), session.preset.knob("tempo")
    card.dial.setFocus()

    def current() -> dict:
        return {loop.key: g for loop, g in session.player.targets().items()}

    before = current()
    qtbot.keyClick(card.dial, Qt.Key.Key_PageUp)  # +10 %: 0.5 -> 0.6, between stops 1 (0.5) and 2 (1.0)
    snap = session.state.snapshot()
    assert snap.knobs["mood"].value == 0.6 and snap.knobs["mood"].alpha == mood.alpha_for(0.6)
    # The crossfade path, before any new render: along mood's axis, tempo at its rendered alpha (0.0, between
    # its stops), at most 2 * MAX_AXES voices whatever the knob count.
    low, high = equal_power(mood.bracket(0.6)[2])
    want = {(1, tempo.alpha_for(0.5)): low, (2, tempo.alpha_for(0.5)): high}
    # The session's mixer thread moves the player's targets a moment after the state changes.
    qtbot.waitUntil(lambda: current() != before, timeout=5_000)
    targets = current()
    if any(isinstance(k[0], float) for k in targets):  # the exact render already landed (a fast machine)
        assert set(targets) == {(mood.alpha_for(0.6), 0.0)}
    else:
        assert targets == {k: pytest.approx(g) for k, g in want.items() if g > 0}
    qtbot.waitUntil(lambda: {lp.key for lp in session.player.targets()} == {(mood.alpha_for(0.6), 0.0)},
                    timeout=30_000)
    qtbot.waitUntil(lambda: card.light.accessibleDescription() == "heard" and panel.waveform._view.exact,
                    timeout=5_000)
    assert card.alpha_label.text() == f"α {mood.alpha_for(0.6):+.2f}" and panel.windowTitle().startswith("panel.toml*")

    wheel(card.dial, 2)  # two notches up: +2 % each
    assert session.state.value("mood") == pytest.approx(0.64)
    qtbot.mouseDClick(card.dial, Qt.MouseButton.LeftButton)  # back to the preset's default
    assert session.state.snapshot().knobs["mood"].alpha == 0.0
    qtbot.waitUntil(lambda: panel.windowTitle() == "panel.toml — steerbridge", timeout=2_000)  # nothing unsaved


def test_midi_learn_binds_the_next_cc_and_that_cc_then_moves_the_knob(panel, qtbot) -> None:
    session, card = panel.controller.session, panel.cards["tempo"]
    router = MidiRouter(session.state)  # the router `serve` feeds from MIDI ports; persists into the file
    try:
        qtbot.mouseClick(card.learn, Qt.MouseButton.LeftButton)
        assert session.state.snapshot().learn_armed == "tempo"
        qtbot.waitUntil(lambda: card.learn.text() == "move a control…", timeout=2_000)
        router.handle(mido.Message("control_change", channel=3, control=70, value=100))
        assert session.state.snapshot().preset.knob("tempo").midi == MidiBinding(channel=4, cc=70)
        qtbot.waitUntil(lambda: card.midi_label.text() == "ch4 CC70" and not card.learn.isChecked(), timeout=2_000)
        assert router.wait_saved(30)  # the file is written on the saver's thread
        assert load_preset(panel.test_folder / "panel.toml").knob("tempo").midi == MidiBinding(channel=4, cc=70)
        assert "*" not in panel.windowTitle()  # learn wrote the file itself: nothing unsaved
        router.handle(mido.Message("control_change", channel=3, control=70, value=64))  # near 0.5: picked up
        assert session.state.value("tempo") == 64 / 127
        qtbot.waitUntil(lambda: card.value_label.text() == f"knob {64 / 127:.3f}", timeout=2_000)
        qtbot.waitUntil(lambda: panel.status.midi_led.level > 0, timeout=2_000)  # the activity light
    finally:
        router.close()


def test_saving_writes_a_preset_that_loads_back_equal(panel, qtbot) -> None:
    controller, folder = panel.controller, panel.test_folder
    panel.scene.prompt.setText("test loop with rhodes")
    qtbot.keyClick(panel.scene.prompt, Qt.Key.Key_Return)  # Enter renders the new scene
    assert controller.session.state.snapshot().prompt == "test loop with rhodes"
    controller.set_knob("mood", 0.8125)
    qtbot.waitUntil(lambda: panel.windowTitle().startswith("panel.toml*"), timeout=2_000)
    before = controller.current_preset()

    assert panel.save_to(folder / "saved.toml")
    loaded = load_preset(folder / "saved.toml")
    assert loaded == before and loaded.knob("mood").default == 0.8125 and loaded.scene.prompt == "test loop with rhodes"
    assert loaded.knob("tempo").midi == MidiBinding(channel=4, cc=70)
    assert panel.windowTitle() == "saved.toml — steerbridge" and panel.recent.paths()[0] == folder / "saved.toml"
    assert not list(folder.glob("*.tmp*"))  # the atomic write left nothing behind

    controller.set_knob("tempo", 0.25)
    assert panel.save()  # plain Save: the same file again
    assert load_preset(folder / "saved.toml") == controller.current_preset()
    assert load_preset(folder / "saved.toml").knob("tempo").default == 0.25


def test_loading_a_preset_builds_the_right_knobs(panel, qtbot) -> None:
    path = panel.test_folder / "other.toml"
    path.write_text(OTHER)
    assert panel.open_preset(path)
    qtbot.waitUntil(lambda: list(panel.cards) == ["brightness", "tempo"], timeout=5_000)
    bright, tempo = panel.cards["brightness"], panel.cards["tempo"]
    spec = load_preset(path)
    assert [c.title.text() for c in panel.cards.values()] == ["BRIGHTNESS", "TEMPO"]
    assert bright.osc_label.text() == "/fx/bright" and bright.midi_label.text() == "MIDI —"
    assert tempo.midi_label.text() == "ch2 NRPN 300"
    assert bright.dial.value() == 0.25 and bright.alpha_label.text() == f"α {spec.knob('brightness').alpha_for(0.25):+.2f}"
    assert tempo.alpha_label.text() == "α +1.00"
    assert panel.scene.prompt.text() == "dark ambient drone" and panel.scene.seed.value() == 3
    assert panel.windowTitle() == "other.toml — steerbridge"
    assert panel.recent.paths()[0] == path
    qtbot.waitUntil(lambda: panel.controller.session.scheduler.wait_idle(timeout=0), timeout=30_000)


def test_a_failing_render_shows_an_error_without_freezing_the_window(panel, qtbot) -> None:
    client, session = panel.test_clients[-1], panel.controller.session
    card = panel.cards["brightness"]
    client.fail = True
    try:
        card.dial.setFocus()
        qtbot.keyClick(card.dial, Qt.Key.Key_Up)  # a position nothing has been rendered for
        qtbot.waitUntil(lambda: "ran out of memory" in panel.banner.text(), timeout=10_000)
        assert "render error" in panel.banner.text()
        ticks, position = panel._ticks, session.player.stats().position_s
        qtbot.wait(300)  # the event loop keeps running: the timer ticks, the playhead moves, knobs answer
        assert panel._ticks >= ticks + 3 and session.player.stats().position_s != position
        qtbot.keyClick(card.dial, Qt.Key.Key_Down)
        assert session.state.value("brightness") == pytest.approx(0.25)
        assert card.light.accessibleDescription() in ("heard", "pending")
    finally:
        client.fail = False
    qtbot.mouseClick(panel.banner.dismiss, Qt.MouseButton.LeftButton)
    assert panel.banner.text() == "" and panel.banner.isHidden()


def test_gui_command_is_registered_and_imports_the_panel_lazily() -> None:
    from steerbridge.bridge.cli import build_parser

    args = build_parser().parse_args(["gui", "--preset", "x.toml", "--output", "null", "--no-midi"])
    assert args.func.__module__ == "steerbridge.bridge.cli.gui" and args.preset == "x.toml" and args.no_midi
    text = (ROOT / "bridge" / "cli" / "gui.py").read_text()
    assert 'importlib.import_module("steerbridge.gui.app")' in text


def test_a_tempo_knob_card_shows_the_tempo_in_bpm(qtbot) -> None:
    from steerbridge.bridge.presets.model import Knob
    from steerbridge.gui.widgets.knob import KnobCard

    knob = Knob(name="tempo", target="bpm", alpha_min=70.0, alpha_max=160.0, stops=5)
    card = KnobCard(knob)
    qtbot.addWidget(card)
    card.set_value(0.5, knob.alpha_for(0.5))
    assert card.alpha_label.text() == "115.0 BPM" and "tempo 70 .. 160 BPM" in card.dial.toolTip()
    assert card.value_label.toolTip().startswith("tempo range")
    assert "renders the loop at the new tempo" in card.dial.toolTip() and card.dial._stops == ()
    steering = Knob(name="tempo", target="bpm", alpha_min=80.0, alpha_max=160.0, vector="v/tempo.safetensors",
                    vector_alpha_min=-1.0, vector_alpha_max=1.5)
    card.set_spec(steering)
    assert "tempo 80 .. 160 BPM and its vector tempo at alpha -1 .. +1.5" in card.dial.toolTip()
