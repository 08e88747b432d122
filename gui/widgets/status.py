"""Status widgets: the engine line, the render progress, activity lights and the error banner.

All of them are passive: the window's timer hands them plain values
(:class:`steerbridge.bridge.live.monitor.EngineView`, counts, seconds since activity). None of
them looks at the session, so none can block or race with it.
"""

from __future__ import annotations

import math

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from steerbridge.bridge.live.monitor import EngineView
from steerbridge.gui.widgets.led import Led
from steerbridge.gui.widgets.tworow import TwoGroups, group

__all__ = ["StatusStrip", "ErrorBanner", "ACTIVITY_DECAY_S"]

ACTIVITY_DECAY_S = 0.6  # an activity light fades out over this long after the last message


class StatusStrip(QFrame):
    """Engine, progress and activity on one line under the waveform."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.engine_led = Led(diameter=12)
        self.engine_led.setToolTip("engine: green running, amber loading, red stopped")
        self.engine_label = QLabel("starting…")
        self.render_label = QLabel("last render —")
        self.underrun_label = QLabel("underruns 0")
        self.progress = QProgressBar()
        self.progress.setMinimumWidth(150)
        self.progress.setMaximumWidth(260)
        self.progress.setFormat("alpha stops %v/%m")
        self.progress.setToolTip("pre-rendered loops at the knobs' alpha stops: knob moves crossfade between them "
                                 "until the exact render lands")
        self.steps = QProgressBar()
        self.steps.setMinimumWidth(80)
        self.steps.setMaximumWidth(110)
        self.steps.setFormat("step %v/%m")
        self.steps.setToolTip("diffusion steps of the render running now")
        self.osc_led = Led("OSC", diameter=12, on="osc")
        self.midi_led = Led("MIDI", diameter=12, on="midi")
        row = QHBoxLayout(self)
        row.setContentsMargins(14, 8, 14, 8)
        left = group(self.engine_led, self.engine_label, 6, self.render_label, 6, self.underrun_label,
                     stretch_at_end=True)
        right = group(self.progress, self.steps, 6, self.osc_led, self.midi_led)
        self.rows = TwoGroups(left, right, spacing=14)
        row.addWidget(self.rows)

    def show_engine(self, view: EngineView, *, starting: bool) -> None:
        self.engine_led.set_color("heard" if view.alive else ("pending" if starting else "error"))
        state = "loading…" if starting and not view.alive else ("" if view.alive else view.down)
        detail = f" · {view.detail}" if view.detail else ""
        self.engine_label.setText(f"{view.model} · {view.device}{detail}" + (f" · {state}" if state else ""))
        last = "—" if view.last_render_s is None else f"{view.last_render_s:.2f} s"
        queued = f" · {view.queued} queued" if view.queued else ""
        self.render_label.setText(f"last render {last}{queued}")
        self.underrun_label.setText(f"underruns {view.underruns} · xruns {view.xruns}")
        self.underrun_label.setStyleSheet("color: #ffc107;" if view.underruns or view.xruns else "")

    def show_progress(self, done: int, total: int, busy: bool) -> None:
        self.progress.setMaximum(max(1, total))
        self.progress.setValue(min(done, max(1, total)))
        self.progress.setFormat("alpha stops %v/%m" + (" · rendering" if busy else ""))

    def show_steps(self, done: int, total: int) -> None:
        self.steps.setMaximum(max(1, total))
        self.steps.setValue(min(done, max(1, total)))

    def show_activity(self, *, osc_s: float, midi_s: float, osc: str | None, midi_ports: tuple[str, ...]) -> None:
        """Light levels from the seconds since the last OSC / MIDI change (inf: never)."""
        for led, since in ((self.osc_led, osc_s), (self.midi_led, midi_s)):
            led.set_level(0.0 if math.isinf(since) else max(0.0, 1.0 - since / ACTIVITY_DECAY_S))
        self.osc_led.set_text(f"OSC {osc}" if osc else "OSC off")
        self.midi_led.set_text(f"MIDI {len(midi_ports)} port" + ("s" if len(midi_ports) != 1 else "")
                               if midi_ports else "MIDI off")
        self.midi_led.setToolTip("\n".join(midi_ports) or "no MIDI input open")


class ErrorBanner(QFrame):
    """A red line with the newest error and a dismiss button; hidden when there is none."""

    dismissed = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setObjectName("banner")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.dismiss = QPushButton("dismiss")
        self.dismiss.clicked.connect(self.clear)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.dismiss)
        self.count = 0
        self.hide()

    def show_error(self, source: str | None, message: str) -> None:
        self.count += 1
        where = f"{source} error" if source else "error"
        more = f"  ({self.count} errors)" if self.count > 1 else ""
        self.label.setText(f"⚠ {where}: {message}{more}")
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def clear(self) -> None:
        self.count = 0
        self.hide()
        self.dismissed.emit()
