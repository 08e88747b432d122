"""Led: a small round light with a label, for states (heard/pending) and activity (OSC/MIDI).

Activity lights *decay*: :meth:`Led.flash` lights it fully and the panel's
timer calls :meth:`Led.set_level` with how recent the activity was, so a
stream of messages glows and a single one blinks, without a timer per light.
"""

from __future__ import annotations

from PyQt6.QtCore import QRectF, QSize, Qt
from PyQt6.QtGui import QColor, QPainter, QPaintEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

from steerbridge.gui.theme import color

__all__ = ["Led"]


class Led(QWidget):
    """A light of ``diameter`` pixels followed by ``text``."""

    def __init__(self, text: str = "", *, diameter: int = 12, on: str = "heard", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text, self._diameter = text, diameter
        self._on = color(on)
        self._level = 0.0  # 0 off .. 1 fully lit
        self.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)  # never clip the label

    def set_color(self, name: str, level: float = 1.0) -> None:
        """Switch to another colour (state lights: heard/pending/idle)."""
        new = color(name)
        if new != self._on or level != self._level:
            self._on, self._level = new, level
            self.update()

    def set_level(self, level: float) -> None:
        level = min(1.0, max(0.0, level))
        if abs(level - self._level) > 0.02:  # repaint only visible changes
            self._level = level
            self.update()

    def set_text(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.updateGeometry()
            self.update()

    @property
    def level(self) -> float:
        return self._level

    def sizeHint(self) -> QSize:
        width = self._diameter + (8 + self.fontMetrics().horizontalAdvance(self._text) if self._text else 0)
        return QSize(width + 2, max(self._diameter, self.fontMetrics().height()) + 2)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        d = self._diameter
        y = (self.height() - d) / 2
        off = color("idle")
        mix = QColor.fromRgbF(*(off.getRgbF()[i] + (self._on.getRgbF()[i] - off.getRgbF()[i]) * self._level
                                for i in range(3)))
        if self._level > 0.05:  # a soft halo makes a lit light readable at a glance
            halo = QColor(self._on)
            halo.setAlphaF(0.25 * self._level)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(halo)
            p.drawEllipse(QRectF(0, y - 2, d + 4, d + 4).translated(-1, 0))
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(mix)
        p.drawEllipse(QRectF(1, y, d, d))
        if self._text:
            p.setPen(color("text_dim"))
            p.drawText(QRectF(d + 8, 0, self.width() - d - 8, self.height()),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, self._text)
        p.end()
