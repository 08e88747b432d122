"""WaveformView: the loop that is playing, with a moving playhead.

Painted with QPainter (no plotting library): the min/max envelope of the
loop is computed once per loop and widget width with numpy and cached as a
pixmap, so the 30 Hz playhead repaint is one blit and one line. That matters
beyond looks: the GUI shares the interpreter with the audio callback, and a
heavy repaint holding the GIL would delay it.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, QSize, Qt
from PyQt6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPen, QPixmap, QResizeEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

from steerbridge.bridge.live.monitor import LoopView
from steerbridge.gui.theme import color, mono_font

__all__ = ["WaveformView", "envelope"]


def envelope(audio: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (min, max) of the channel mix of ``[channels, frames]`` audio, DC removed.

    DC is inaudible but would push the drawing off centre (random-weight
    models produce plenty of it), so the display subtracts the mean."""
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    mono = mono - mono.mean()
    columns = max(1, min(columns, mono.shape[0]))
    usable = mono[: mono.shape[0] // columns * columns].reshape(columns, -1)
    return usable.min(axis=1), usable.max(axis=1)


class WaveformView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._view: LoopView | None = None
        self._pixmaps: tuple[QPixmap, QPixmap] | None = None  # (unplayed, played) colours
        self._pixmap_key: tuple[int, int, int, bool] | None = None
        self._position = 0.0
        self._note = "no loop yet: rendering…"
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(800, 150)

    def set_loop(self, view: LoopView | None) -> None:
        """Show ``view`` (or nothing); repaints only what changed."""
        old = self._view
        self._view = view
        if view is None:
            if old is not None:
                self.update()
            return
        if old is None or old.ident != view.ident or old.exact != view.exact or old.voices != view.voices:
            self.update()
        self.set_position(view.position)

    def set_note(self, note: str) -> None:
        """The text shown while there is no loop (e.g. an engine error)."""
        if note != self._note:
            self._note = note
            self.update()

    def set_position(self, position: float) -> None:
        if abs(position - self._position) * max(1, self.width()) >= 0.5:  # at least half a pixel
            self._position = position
            self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._pixmap_key = None  # the envelope depends on the width
        super().resizeEvent(event)

    def _wave_pixmaps(self, view: LoopView, rect: QRectF) -> tuple[QPixmap, QPixmap]:
        """The loop drawn twice, in the unplayed and the played colour (the playhead clips between them)."""
        key = (view.ident, int(rect.width()), int(rect.height()), view.exact)
        if self._pixmaps is not None and self._pixmap_key == key:
            return self._pixmaps
        lo, hi = envelope(view.audio, int(rect.width()))
        peak = float(max(np.abs(lo).max(initial=0.0), np.abs(hi).max(initial=0.0))) or 1.0
        mid, half = rect.height() / 2, rect.height() / 2 * 0.92
        xs = np.linspace(0, rect.width(), lo.shape[0])
        path = QPainterPath(QPointF(0, mid))
        for x, v in zip(xs, hi):  # upper edge left to right, lower edge back: one filled shape
            path.lineTo(float(x), mid - float(v) / peak * half)
        for x, v in zip(xs[::-1], lo[::-1]):
            path.lineTo(float(x), mid - float(v) / peak * half)
        path.closeSubpath()
        ratio = self.devicePixelRatioF()
        wave = color("wave") if view.exact else color("wave").darker(135)
        pixmaps = []
        for fill in (wave, color("accent")):
            pix = QPixmap(int(rect.width() * ratio), int(rect.height() * ratio))
            pix.setDevicePixelRatio(ratio)
            pix.fill(Qt.GlobalColor.transparent)
            p = QPainter(pix)
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setPen(QPen(fill.lighter(115), 1))
            p.setBrush(fill)
            p.drawPath(path)
            p.end()
            pixmaps.append(pix)
        self._pixmaps, self._pixmap_key = (pixmaps[0], pixmaps[1]), key
        return self._pixmaps

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        outer = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        p.setPen(QPen(color("border"), 1))
        p.setBrush(color("panel"))
        p.drawRoundedRect(outer, 10, 10)
        rect = outer.adjusted(12, 26, -12, -10)
        p.setFont(mono_font(9))
        view = self._view
        if view is None:
            p.setPen(color("text_dim"))
            p.drawText(outer, Qt.AlignmentFlag.AlignCenter, self._note)
            p.end()
            return
        frames = view.audio.shape[-1]
        seconds = frames / view.rate
        grid = QColor(color("border"))
        p.setPen(QPen(grid, 1))
        for i in range(1, 16):  # sixteen steps per loop: a bar of sixteenths, whatever the tempo
            gx = rect.left() + rect.width() * i / 16
            p.setPen(QPen(grid.lighter(140) if i % 4 == 0 else grid, 1))
            p.drawLine(QPointF(gx, rect.top()), QPointF(gx, rect.bottom()))
        p.setPen(QPen(color("border"), 1, Qt.PenStyle.DashLine))
        p.drawLine(QPointF(rect.left(), rect.center().y()), QPointF(rect.right(), rect.center().y()))
        unplayed, played = self._wave_pixmaps(view, rect)
        x = rect.left() + self._position * rect.width()
        p.drawPixmap(rect.topLeft(), unplayed)
        p.save()
        p.setClipRect(QRectF(rect.left(), rect.top() - 1, x - rect.left(), rect.height() + 2))
        p.drawPixmap(rect.topLeft(), played)
        p.restore()
        p.setPen(QPen(color("text"), 2))
        p.drawLine(QPointF(x, rect.top() - 4), QPointF(x, rect.bottom() + 4))
        what = "exact render" if view.exact else f"crossfade of {view.voices} pre-rendered stop" + (
            "s" if view.voices != 1 else "")
        p.setPen(color("heard") if view.exact else color("pending"))
        p.drawText(QRectF(outer.left() + 12, outer.top() + 4, rect.width() / 2, 20),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, "● " + what)
        info = f"{self._position * seconds:5.2f} / {seconds:.2f} s · {view.rate / 1000:g} kHz"
        p.setPen(color("text_dim"))
        p.drawText(QRectF(outer.left() + rect.width() / 2, outer.top() + 4, rect.width() / 2, 20),
                   Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, info)
        p.end()
