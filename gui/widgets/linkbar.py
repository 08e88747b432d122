"""LinkBar: the panel's Ableton Link toggle and what the Link session says (tempo, peers, transport, bars)."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QWidget

from steerbridge.gui.widgets.led import Led

__all__ = ["LinkBar"]


class LinkBar(QWidget):
    """A "Link" check box (emits :attr:`toggled`) and a light with the session's tempo and peers."""

    toggled = pyqtSignal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.check = QCheckBox("Link")
        self.check.setToolTip("Join Ableton Link: loops last a number of bars at the band's tempo, start on its "
                              "bar lines and follow its tempo and start/stop (needs steerbridge[link]). "
                              "Restarts the session.")
        self.light = Led("", diameter=10, on="heard")
        self.label = QLabel("off")
        self.label.setObjectName("dim")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for w in (self.check, self.light, self.label):
            row.addWidget(w)
        self.check.toggled.connect(self.toggled.emit)

    def set_checked(self, on: bool) -> None:
        """Show the setting without emitting :attr:`toggled` (the panel reflecting the session)."""
        self.check.blockSignals(True)
        self.check.setChecked(on)
        self.check.blockSignals(False)

    def show_status(self, text: str | None, *, playing: bool = False, bars: int | None = None) -> None:
        """``text``: the Link session's summary (None: Link off)."""
        if text is None:
            self.light.set_level(0.0)
            self.label.setText("off")
            return
        self.light.set_color("heard" if playing else "pending")
        self.label.setText(f"{text} · {bars} bars" if bars is not None else text)
