"""SceneBar: what to render (prompt, seed, loop length) and where it plays (output, volume).

Scene edits are *staged*: typing a prompt or stepping the seed renders
nothing until Enter or **Render** (each new scene costs a full pre-render of
the alpha stops, so it must not start on every keystroke). **New seed**
picks a random seed and renders at once: the "give me another take" button.
Fields that have the keyboard focus are never overwritten by remote changes
(OSC ``/steer/prompt``), so a performer's half-typed prompt survives.
"""

from __future__ import annotations

import math
import random

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (QComboBox, QDoubleSpinBox, QFrame, QGridLayout, QLabel, QLineEdit, QPushButton, QSlider,
                             QSpinBox, QWidget)

from steerbridge.gui.widgets.tworow import TwoGroups, group

__all__ = ["SceneBar", "SEED_MAX"]

SEED_MAX = 2**31 - 1  # QSpinBox holds a C int; the engine takes 0..2**32-1


def _heading(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("heading")
    return label


class SceneBar(QFrame):
    renderRequested = pyqtSignal(str, int, float)  # prompt, seed, seconds
    playToggled = pyqtSignal(bool)
    outputChosen = pyqtSignal(str)  # an output spec: "default", a device name, "null", "wav:DIR"
    volumeChanged = pyqtSignal(float)  # linear gain 0..1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("describe the music, e.g. lofi hip hop beat with warm piano")
        self.prompt.setMinimumWidth(200)
        self.seed = QSpinBox()
        self.seed.setRange(0, SEED_MAX)
        self.seed.setMinimumWidth(110)
        self.new_seed = QPushButton("⚄ new seed")
        self.new_seed.setToolTip("a random seed, rendered at once: another take of the same prompt")
        self.seconds = QDoubleSpinBox()
        self.seconds.setRange(0.5, 600.0)
        self.seconds.setDecimals(1)
        self.seconds.setSingleStep(0.5)
        self.seconds.setSuffix(" s")
        self.render_button = QPushButton("Render")
        self.render_button.setObjectName("primary")
        self.render_button.setToolTip("render the prompt, seed and loop length above (Enter in the prompt does too)")
        self.play = QPushButton("▶ Play")
        self.play.setCheckable(True)
        self.play.setMinimumWidth(100)
        self.output = QComboBox()
        self.output.setMinimumWidth(170)
        self.output.setToolTip("where the audio goes; switching restarts the audio side (the model stays loaded)")
        self.volume = QSlider(Qt.Orientation.Horizontal)
        self.volume.setRange(0, 100)
        self.volume.setValue(100)
        self.volume.setMinimumWidth(100)
        self.volume_label = QLabel()
        self.volume_label.setObjectName("dim")
        self.volume_label.setMinimumWidth(64)

        grid = QGridLayout(self)
        grid.setContentsMargins(14, 10, 14, 12)
        grid.setHorizontalSpacing(10)
        grid.addWidget(_heading("PROMPT"), 0, 0)
        grid.addWidget(self.prompt, 0, 1, 1, 5)
        grid.addWidget(self.render_button, 0, 6)
        left = group(_heading("SEED"), self.seed, self.new_seed, 20, _heading("LOOP"), self.seconds, 20, self.play,
                     stretch_at_end=True)
        right = group(_heading("OUTPUT"), self.output, 20, _heading("VOLUME"), self.volume, self.volume_label)
        self.second_row = TwoGroups(left, right)
        grid.addWidget(self.second_row, 1, 0, 1, 7)

        self.prompt.returnPressed.connect(self._request)
        self.render_button.clicked.connect(self._request)
        self.new_seed.clicked.connect(self._new_seed)
        self.play.toggled.connect(self._play_toggled)
        self.output.activated.connect(lambda i: self.outputChosen.emit(str(self.output.itemData(i))))
        self.volume.valueChanged.connect(self._volume_moved)
        self._volume_moved(self.volume.value())

    # -- from the state (the panel's timer) -----------------------------------
    def show_scene(self, prompt: str, seed: int, seconds: float) -> None:
        if not self.prompt.hasFocus() and self.prompt.text() != prompt:
            self.prompt.setText(prompt)
            self.prompt.setCursorPosition(0)
        if not self.seed.hasFocus():
            self.seed.setValue(min(seed, SEED_MAX))
        if not self.seconds.hasFocus():
            self.seconds.setValue(seconds)

    def set_playing(self, playing: bool) -> None:
        if self.play.isChecked() != playing:
            self.play.blockSignals(True)
            self.play.setChecked(playing)
            self.play.blockSignals(False)
        self.play.setText("■ Stop" if playing else "▶ Play")

    def set_outputs(self, outputs: list[tuple[str, str]], current: str) -> None:
        self.output.blockSignals(True)
        self.output.clear()
        for spec, label in outputs:
            self.output.addItem(label, spec)
        if self.output.findData(current) < 0:
            self.output.addItem(current, current)
        self.output.setCurrentIndex(self.output.findData(current))
        self.output.blockSignals(False)

    def set_volume(self, gain: float) -> None:
        self.volume.setValue(round(math.sqrt(max(0.0, gain)) * 100))

    # -- user actions -----------------------------------------------------------
    def _request(self) -> None:
        self.renderRequested.emit(self.prompt.text(), self.seed.value(), self.seconds.value())

    def _new_seed(self) -> None:
        self.seed.setValue(random.randint(0, SEED_MAX))
        self._request()

    def _play_toggled(self, on: bool) -> None:
        self.play.setText("■ Stop" if on else "▶ Play")
        self.playToggled.emit(on)

    def _volume_moved(self, percent: int) -> None:
        gain = (percent / 100) ** 2  # a fader law: half way is -12 dB, the top half is where you mix
        self.volume_label.setText("-∞ dB" if gain == 0 else f"{20 * math.log10(gain):+.1f} dB")
        self.volumeChanged.emit(gain)
