"""MainWindow: the panel's layout, menus, and the 30 Hz refresh from the session.

Top to bottom: error banner (hidden until something fails), scene bar
(prompt, seed, loop, play, output, volume), one card per preset knob, the
waveform of what is playing, and the status strip (engine, progress,
activity). The window only *reads* the session on the controller's tick and
*writes* through the controller; it never waits for the engine.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QAction, QCloseEvent, QKeySequence
from PyQt6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMenu, QMessageBox, QPushButton,
                             QScrollArea, QToolButton, QVBoxLayout, QWidget)

from steerbridge.bridge.control.state import StateSnapshot
from steerbridge.bridge.live.monitor import list_outputs
from steerbridge.bridge.live.session import SessionEvent
from steerbridge.bridge.presets.model import PresetError
from steerbridge.gui.controller import SessionController
from steerbridge.gui.presetfile import RecentPresets
from steerbridge.gui.widgets.knob import KnobCard
from steerbridge.gui.widgets.linkbar import LinkBar
from steerbridge.gui.widgets.scene import SceneBar
from steerbridge.gui.widgets.status import ErrorBanner, StatusStrip
from steerbridge.gui.widgets.waveform import WaveformView

__all__ = ["MainWindow"]

_SLOW_EVERY = 8  # engine/status text: every 8th tick (about 4 Hz), the rest at 30 Hz


class MainWindow(QMainWindow):
    def __init__(self, controller: SessionController, recent: RecentPresets) -> None:
        super().__init__()
        self.controller, self.recent = controller, recent
        self.cards: dict[str, KnobCard] = {}
        self._seen_version = -1
        self._seen_preset: object = None
        self._ticks = 0
        self._outputs: list[tuple[str, str]] | None = None
        self.ask_before_close = True  # tests and scripts turn the unsaved-changes question off

        self.banner = ErrorBanner()
        header = self._build_header()
        self.scene = SceneBar()
        self.knob_row = QHBoxLayout()
        self.knob_row.setSpacing(12)
        knobs = QWidget()
        knobs.setLayout(self.knob_row)
        scroll = QScrollArea()  # many knobs scroll sideways instead of squeezing
        scroll.setWidget(knobs)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        scroll.setMinimumHeight(270)
        self.waveform = WaveformView()
        self.status = StatusStrip()
        self.phase_label = QLabel()
        self.phase_label.setObjectName("dim")

        central = QWidget()
        col = QVBoxLayout(central)
        col.setContentsMargins(14, 10, 14, 12)
        col.setSpacing(10)
        col.addLayout(header)
        for w, stretch in ((self.banner, 0), (self.scene, 0), (scroll, 3), (self.waveform, 2), (self.status, 0)):
            col.addWidget(w, stretch)
        self.setCentralWidget(central)
        self.statusBar().addWidget(self.phase_label, 1)
        self._build_menus()
        self.resize(1200, 760)  # the minimum size is what the layouts need (no overlapping at any size)

        c = controller
        self.scene.renderRequested.connect(self._render_scene)
        self.scene.playToggled.connect(c.set_playing)
        self.scene.volumeChanged.connect(c.set_volume)
        self.scene.outputChosen.connect(c.set_output)
        c.sessionChanged.connect(self._session_changed)
        c.eventReceived.connect(self._on_event)
        c.lifecycle.connect(self._on_lifecycle)
        c.tick.connect(self._refresh)
        self._list_outputs_async()

    # ------------------------------------------------------------------ menus and preset files
    def _build_header(self) -> QHBoxLayout:
        """Brand, preset name (with ``*`` for unsaved changes) and big preset buttons: menus are
        hard to hit on stage, so the common preset actions are buttons too."""
        brand = QLabel("STEERBRIDGE")
        brand.setObjectName("brand")
        self.preset_name = QLabel()
        self.preset_name.setObjectName("presetname")
        row = QHBoxLayout()
        row.addWidget(brand)
        row.addSpacing(16)
        row.addWidget(self.preset_name)
        row.addStretch(1)
        self.link_bar = LinkBar()
        self.link_bar.toggled.connect(self.controller.set_link)
        row.addWidget(self.link_bar)
        row.addSpacing(12)
        self.recent_button = QToolButton()
        self.recent_button.setText("Recent ▾")
        self.recent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        for text, slot in (("Open…", self.open_dialog), ("Save", self.save), ("Save as…", self.save_as_dialog)):
            button = QPushButton(text)
            button.clicked.connect(lambda _checked=False, f=slot: f())
            row.addWidget(button)
        row.addWidget(self.recent_button)
        return row

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&Preset")
        self.open_action = self._action(menu, "&Open…", QKeySequence.StandardKey.Open, self.open_dialog)
        self.recent_menu = QMenu("Open &recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        menu.addMenu(self.recent_menu)
        menu.addSeparator()
        self.save_action = self._action(menu, "&Save", QKeySequence.StandardKey.Save, self.save)
        self.save_as_action = self._action(menu, "Save &as…", QKeySequence.StandardKey.SaveAs, self.save_as_dialog)
        menu.addSeparator()
        self._action(menu, "&Quit", QKeySequence.StandardKey.Quit, self.close)
        self.recent_button.setMenu(self.recent_menu)
        self._fill_recent()

    def _action(self, menu: QMenu, text: str, keys: QKeySequence.StandardKey, slot: object) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(keys))
        action.triggered.connect(lambda _checked=False: slot())  # type: ignore[operator]
        menu.addAction(action)
        return action

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        paths = self.recent.existing()
        for path in paths:
            self.recent_menu.addAction(path.name, lambda p=path: self.open_preset(p)).setToolTip(str(path))
        if not paths:
            self.recent_menu.addAction("(none yet)").setEnabled(False)

    def open_dialog(self) -> None:
        start = str(self._preset_dir())
        path, _ = QFileDialog.getOpenFileName(self, "Open preset", start, "Presets (*.toml)")
        if path:
            self.open_preset(Path(path))

    def open_preset(self, path: Path) -> bool:
        try:
            self.controller.open(path)
        except (PresetError, OSError, ValueError) as exc:
            self.banner.show_error("preset", str(exc))
            return False
        self.recent.add(path)
        return True

    def save(self) -> bool:
        if self.controller.session is None:
            return False
        if self.controller.current_preset().path is None:
            return self.save_as_dialog()
        return self.save_to(None)

    def save_as_dialog(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save preset as", str(self._preset_dir()), "Presets (*.toml)")
        return bool(path) and self.save_to(Path(path if path.endswith(".toml") else path + ".toml"))

    def save_to(self, path: Path | None) -> bool:
        try:
            saved = self.controller.save(path)
        except (PresetError, OSError, ValueError) as exc:
            self.banner.show_error("save", str(exc))
            return False
        if saved.path is not None:
            self.recent.add(saved.path)
        self.phase_label.setText(f"saved {saved.path}")
        self._update_title()
        return True

    def _preset_dir(self) -> Path:
        s = self.controller.session
        return s.state.snapshot().preset.base_dir if s is not None else Path.cwd()

    def _render_scene(self, prompt: str, seed: int, seconds: float) -> None:
        try:
            self.controller.set_scene(prompt, seed, seconds)
        except ValueError as exc:  # an empty prompt, a length out of range: the message has the fix
            self.banner.show_error("scene", str(exc))

    # ------------------------------------------------------------------ session -> widgets
    def _session_changed(self) -> None:
        self._seen_version, self._seen_preset = -1, None
        self.waveform.set_loop(None)
        self.waveform.set_note("loading the model and pre-rendering the alpha stops…")
        self._refresh()

    def _rebuild_cards(self, snap: StateSnapshot) -> None:
        names = snap.preset.knob_names()
        if tuple(self.cards) == names:
            for knob in snap.preset.knobs:
                self.cards[knob.name].set_spec(knob)
            return
        for card in self.cards.values():
            self.knob_row.removeWidget(card)
            card.deleteLater()
        self.cards = {}
        while self.knob_row.count():  # the old stretch items
            self.knob_row.takeAt(0)
        for knob in snap.preset.knobs:
            card = KnobCard(knob)
            card.valueEdited.connect(self.controller.set_knob)
            card.learnToggled.connect(lambda name, on: self.controller.arm_learn(name if on else None))
            self.cards[knob.name] = card
            self.knob_row.addWidget(card, 1)
        if not names:
            self.knob_row.addWidget(QLabel("this preset has no [[knob]] tables"))
        self.knob_row.addStretch(0)

    def _refresh(self) -> None:
        """The controller's 30 Hz tick: copy the session's state into the widgets."""
        c = self.controller
        session, monitor = c.session, c.monitor
        if session is None or monitor is None:
            return
        self._ticks += 1
        snap = session.state.snapshot()
        if snap.version != self._seen_version:
            if snap.preset is not self._seen_preset:
                self._rebuild_cards(snap)
                self._seen_preset = snap.preset
            for name, k in snap.knobs.items():
                card = self.cards.get(name)
                if card is not None:
                    card.set_value(k.value, k.alpha)
                    card.set_armed(snap.learn_armed == name)
            self.scene.show_scene(snap.prompt, snap.seed, snap.seconds)
            self.scene.set_playing(snap.playing)
            self._seen_version = snap.version
            self._update_title()
        for name, status in monitor.knob_status().items():
            if name in self.cards:
                self.cards[name].set_status(status)
        self.waveform.set_loop(monitor.loop_view())
        self.status.show_progress(*monitor.stops_progress())
        self.status.show_activity(osc_s=monitor.seconds_since("osc"), midi_s=monitor.seconds_since("midi"),
                                  osc=session.surfaces.osc_address, midi_ports=session.surfaces.midi_ports)
        if self._ticks % _SLOW_EVERY == 1:
            self.status.show_engine(monitor.engine(), starting=c.phase == "starting")
            self._show_link(session, snap)

    def _show_link(self, session: object, snap: StateSnapshot) -> None:
        self.link_bar.set_checked(self.controller.link_on())
        link = getattr(session, "link", None)
        status = link.status() if link is not None else None
        if status is None:
            self.link_bar.show_status("starting…" if self.controller.link_on() else None)
        else:
            self.link_bar.show_status(status.summary(), playing=status.playing, bars=snap.bars)

    def _update_title(self) -> None:
        s = self.controller.session
        path = s.state.snapshot().preset.path if s is not None else None
        name = path.name if path is not None else "untitled"
        title = f"{name}{'*' if self.controller.is_dirty() else ''}"
        self.setWindowTitle(f"{title} — steerbridge")
        self.preset_name.setText(title)
        self.preset_name.setToolTip(str(path) if path is not None else "not saved yet")

    def _on_event(self, event: SessionEvent) -> None:
        if event.kind == "error":
            self.banner.show_error(event.source, event.message)
        elif event.kind == "progress" and event.message == "render":
            self.status.show_steps(event.done, event.total)
        elif event.kind == "status" and not event.message.startswith("underruns"):
            self.phase_label.setText(event.message)  # underruns have their own place in the strip

    def _on_lifecycle(self, phase: str, message: str) -> None:
        self.phase_label.setText(message)
        if phase == "failed":
            self.banner.show_error("engine", message)
            self.waveform.set_note("the engine did not start; see the message above")
        if self.controller.monitor is not None:
            self.status.show_engine(self.controller.monitor.engine(), starting=phase == "starting")

    # ------------------------------------------------------------------ outputs
    def _list_outputs_async(self) -> None:
        # Listing PortAudio devices initialises PortAudio: not on the GUI thread.
        def work() -> None:
            self._outputs = list_outputs()  # NB: one reference store; the tick below picks it up

        threading.Thread(target=work, name="steerbridge-gui-outputs", daemon=True).start()
        self.scene.set_outputs([(self.controller.options.output, self.controller.options.output)],
                               self.controller.options.output)
        self.controller.tick.connect(self._show_outputs_when_listed)

    def _show_outputs_when_listed(self) -> None:
        if self._outputs is not None:
            self.controller.tick.disconnect(self._show_outputs_when_listed)
            self.scene.set_outputs(self._outputs, self.controller.options.output)

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event: QCloseEvent) -> None:
        if self.ask_before_close and self.controller.is_dirty():
            answer = QMessageBox.question(
                self, "Unsaved changes", "Save the current knobs and scene into the preset before quitting?",
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                | QMessageBox.StandardButton.Cancel)
            if answer == QMessageBox.StandardButton.Cancel or (
                    answer == QMessageBox.StandardButton.Save and not self.save()):
                event.ignore()
                return
        self.controller.close()
        event.accept()
