"""Knobs: a large painted dial, and the card around it that shows one preset knob.

The dial works in the knob's *normalised* position (0..1), the same number
MIDI and ``/steer/knob/<name>`` send, so all three surfaces agree; the card
shows the alpha that position maps to through the knob's curve. The arc is
drawn from the position where alpha is 0 (or from the start for one-sided
ranges), so a glance shows which way, and how hard, a concept is pushed.

Input: vertical drag (Shift: fine), mouse wheel (Shift: fine), arrow keys
(1 %), Page Up/Down (10 %), Home/End, and double-click or Delete for the
default. Only *user* actions emit :attr:`KnobDial.valueEdited`; the panel's
timer sets values from OSC/MIDI with :meth:`KnobDial.set_value`, which does
not, so a remote move never echoes back as a panel move.
"""

from __future__ import annotations

import math
from pathlib import Path

from PyQt6.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPen, QRadialGradient, QWheelEvent
from PyQt6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from steerbridge.bridge.live.monitor import KNOB_HEARD, KNOB_PENDING
from steerbridge.bridge.presets.model import Knob, MidiBinding
from steerbridge.gui.theme import color, mono_font
from steerbridge.gui.widgets.led import Led

__all__ = ["KnobDial", "KnobCard", "describe_midi"]

_START, _SPAN = 225.0, 270.0  # degrees: the arc runs clockwise from 7:30 to 4:30 o'clock
_DRAG_PIXELS = 200.0  # a 200-pixel drag sweeps the whole range (Shift: 1000)


class KnobDial(QWidget):
    valueEdited = pyqtSignal(float)  # user moves only

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._value, self._default, self._origin = 0.0, 0.0, 0.0
        self._stops: tuple[float, ...] = ()
        self._drag: tuple[float, float] | None = None  # (start y, start value)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(90, 90)
        self.setCursor(Qt.CursorShape.SizeVerCursor)

    def sizeHint(self) -> QSize:
        return QSize(150, 150)

    # -- model ------------------------------------------------------------
    def value(self) -> float:
        return self._value

    def set_value(self, value: float) -> None:
        """Show ``value`` without emitting (remote moves, preset loads)."""
        value = min(1.0, max(0.0, float(value)))
        if value != self._value:
            self._value = value
            self.update()

    def configure(self, *, default: float, origin: float, stops: tuple[float, ...]) -> None:
        self._default, self._origin, self._stops = default, origin, stops
        self.update()

    def _edit(self, value: float) -> None:
        value = min(1.0, max(0.0, value))
        if value != self._value:
            self._value = value
            self.update()
            self.valueEdited.emit(value)

    # -- input --------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag = (event.position().y(), self._value)
            self.setFocus()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None:
            y0, v0 = self._drag
            fine = event.modifiers() & Qt.KeyboardModifier.ShiftModifier
            self._edit(v0 + (y0 - event.position().y()) / (_DRAG_PIXELS * (5 if fine else 1)))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._drag = None

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        self._drag = None
        self._edit(self._default)

    def wheelEvent(self, event: QWheelEvent) -> None:
        notches = event.angleDelta().y() / 120.0 or event.angleDelta().x() / 120.0
        fine = event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        self._edit(self._value + notches * (0.004 if fine else 0.02))
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, fine = event.key(), bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        step = 0.002 if fine else 0.01
        moves = {Qt.Key.Key_Up: step, Qt.Key.Key_Right: step, Qt.Key.Key_Down: -step, Qt.Key.Key_Left: -step,
                 Qt.Key.Key_PageUp: 0.1, Qt.Key.Key_PageDown: -0.1}
        if key in moves:
            self._edit(self._value + moves[key])
        elif key == Qt.Key.Key_Home:
            self._edit(0.0)
        elif key == Qt.Key.Key_End:
            self._edit(1.0)
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self._edit(self._default)
        else:
            super().keyPressEvent(event)

    # -- painting -----------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        side = min(self.width(), self.height()) - 8
        c = QPointF(self.width() / 2, self.height() / 2)
        r = side / 2
        ring = QRectF(c.x() - r * 0.86, c.y() - r * 0.86, r * 1.72, r * 1.72)
        width = max(4.0, r * 0.12)
        p.setPen(QPen(color("panel_hi"), width, cap=Qt.PenCapStyle.RoundCap))
        p.drawArc(ring, int(_START * 16), int(-_SPAN * 16))
        a0, a1 = self._angle(self._origin), self._angle(self._value)
        p.setPen(QPen(color("accent"), width, cap=Qt.PenCapStyle.RoundCap))
        p.drawArc(ring, int(a0 * 16), int((a1 - a0) * 16) or -1)
        for stop in self._stops:  # pre-rendered alpha stops: where the crossfade has real loops
            self._dot(p, c, r * 1.0, stop, 2.2, color("text_dim"))
        self._dot(p, c, r * 1.0, self._default, 3.0, color("text"))
        body = r * 0.62
        grad = QRadialGradient(c - QPointF(body * 0.3, body * 0.3), body * 1.4)
        grad.setColorAt(0.0, QColor("#4a4e57"))
        grad.setColorAt(1.0, QColor("#25272c"))
        p.setPen(QPen(color("accent") if self.hasFocus() else color("border"), 2))
        p.setBrush(grad)
        p.drawEllipse(c, body, body)
        rad = math.radians(a1)
        tip = c + QPointF(math.cos(rad), -math.sin(rad)) * body * 0.85
        p.setPen(QPen(color("text"), max(2.0, r * 0.05), cap=Qt.PenCapStyle.RoundCap))
        p.drawLine(c + QPointF(math.cos(rad), -math.sin(rad)) * body * 0.35, tip)
        p.end()

    @staticmethod
    def _angle(value: float) -> float:
        return _START - _SPAN * value

    def _dot(self, p: QPainter, c: QPointF, radius: float, value: float, size: float, fill: QColor) -> None:
        rad = math.radians(self._angle(value))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(fill)
        p.drawEllipse(c + QPointF(math.cos(rad), -math.sin(rad)) * radius, size, size)


def describe_midi(binding: MidiBinding | None) -> str:
    if binding is None:
        return "MIDI —"
    if binding.mode == "nrpn":
        return f"ch{binding.channel} NRPN {binding.nrpn}"
    return f"ch{binding.channel} CC{binding.cc}" + (" 14-bit" if binding.mode == "14bit" else "")


class KnobCard(QFrame):
    """One preset knob: name, dial, alpha/value, exact-render light, MIDI (learn) and OSC."""

    valueEdited = pyqtSignal(str, float)  # (knob name, normalised value), user moves only
    learnToggled = pyqtSignal(str, bool)

    def __init__(self, knob: Knob, *, prefix: str = "/steer", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.name = knob.name
        self._prefix = prefix
        self.title = QLabel(knob.name.upper())
        self.title.setObjectName("title")
        self.light = Led(diameter=12)
        self.light.setToolTip("green: you hear the exact render for this knob; amber: a crossfade of the "
                              "pre-rendered stops around it while the exact render is pending")
        self.dial = KnobDial()
        self.alpha_label = QLabel()
        self.alpha_label.setObjectName("alpha")
        self.alpha_label.setFont(mono_font(17))
        self.alpha_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.value_label = QLabel()
        self.value_label.setObjectName("dim")
        self.value_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.midi_label = QLabel()
        self.midi_label.setFont(mono_font(9))
        self.learn = QPushButton("learn")
        self.learn.setObjectName("learn")
        self.learn.setCheckable(True)
        self.learn.setToolTip("arm MIDI learn: the next controller you move is bound to this knob "
                              "(and saved into the preset file)")
        self.osc_label = QLabel()
        self.osc_label.setObjectName("dim")
        self.osc_label.setFont(mono_font(9))

        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addStretch(1)
        head.addWidget(self.light)
        midi = QHBoxLayout()
        midi.addWidget(self.midi_label)
        midi.addStretch(1)
        midi.addWidget(self.learn)
        col = QVBoxLayout(self)
        col.setContentsMargins(12, 10, 12, 10)
        col.addLayout(head)
        col.addWidget(self.dial, 1)
        col.addWidget(self.alpha_label)
        col.addWidget(self.value_label)
        col.addLayout(midi)
        col.addWidget(self.osc_label)
        self.setMinimumWidth(190)

        self.dial.valueEdited.connect(lambda v: self.valueEdited.emit(self.name, v))
        self.learn.toggled.connect(lambda on: self.learnToggled.emit(self.name, on))
        self.set_spec(knob)

    def set_spec(self, knob: Knob) -> None:
        """Show a (possibly edited) preset knob: range, stops, bindings."""
        self._knob = knob
        lo, hi = knob.alpha_min, knob.alpha_max
        origin = knob.value_for(0.0) if min(lo, hi) <= 0.0 <= max(lo, hi) else 0.0
        # a tempo knob has no pre-rendered stops: a move renders the loop at the new tempo (bridge/live/axes.py)
        self.dial.configure(default=knob.default, origin=origin, stops=() if knob.is_tempo else knob.stop_values())
        self.midi_label.setText(describe_midi(knob.midi))
        self.osc_label.setText(knob.osc_address(self._prefix))
        what = f"tempo {lo:g} .. {hi:g} BPM" if knob.is_tempo else f"alpha {lo:+g} .. {hi:+g}"
        if knob.is_tempo and knob.vector:
            what += (f" and its vector {Path(knob.vector).stem} at alpha {knob.vector_alpha(lo):+g} .. "
                     f"{knob.vector_alpha(hi):+g}")
        ready = "a move renders the loop at the new tempo" if knob.is_tempo else f"{knob.stops} pre-rendered stops"
        self.dial.setToolTip(f"{knob.name}: {what} ({knob.curve}), {ready}; drag, wheel or arrow keys; "
                             f"double-click resets to {knob.default:g}")

    def set_value(self, value: float, alpha: float) -> None:
        self.dial.set_value(value)
        # a tempo knob's "alpha" is the BPM the model plays at (target = "bpm")
        self.alpha_label.setText(f"{alpha:.1f} BPM" if self._knob.is_tempo else f"α {alpha:+.2f}")
        self.value_label.setText(f"knob {value:.3f}")
        what = "tempo range" if self._knob.is_tempo else "alpha range"
        self.value_label.setToolTip(f"{what} {self._knob.alpha_min:+g} .. {self._knob.alpha_max:+g}, "
                                    f"{self._knob.curve} curve")

    def set_status(self, status: str) -> None:
        self.light.set_color({KNOB_HEARD: "heard", KNOB_PENDING: "pending"}.get(status, "idle"))
        self.light.setAccessibleDescription(status)

    def set_armed(self, armed: bool) -> None:
        if self.learn.isChecked() != armed:
            self.learn.blockSignals(True)  # showing the state must not re-arm it
            self.learn.setChecked(armed)
            self.learn.blockSignals(False)
        self.learn.setText("move a control…" if armed else "learn")
