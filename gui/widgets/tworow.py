"""TwoGroups: two widget groups side by side when they fit, stacked when the window is narrow.

The panel must stay usable on a small laptop screen next to a DAW, yet use
one line per strip on a wide one. Qt has no flow layout for widgets with
different stretch, so this is the smallest thing that works: on every resize
compare the width with what both groups need side by side, and move the
right-hand group below the left one (or back) only when that answer changes.
"""

from __future__ import annotations

from PyQt6.QtGui import QResizeEvent
from PyQt6.QtWidgets import QGridLayout, QHBoxLayout, QSizePolicy, QWidget

__all__ = ["TwoGroups", "group"]


def group(*widgets: QWidget | int, stretch_at_end: bool = False) -> QWidget:
    """A plain widget holding ``widgets`` in a row (ints are spacings in pixels)."""
    box = QWidget()
    box.setObjectName("group")  # transparent (theme.py): a group shows its card's background
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(8)
    for w in widgets:
        if isinstance(w, int):
            row.addSpacing(w)
        else:
            row.addWidget(w)
    if stretch_at_end:
        row.addStretch(1)
    box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
    return box


class TwoGroups(QWidget):
    def __init__(self, left: QWidget, right: QWidget, *, spacing: int = 20, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.left, self.right, self._spacing = left, right, spacing
        self.setObjectName("group")
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(spacing)
        self._grid.setVerticalSpacing(8)
        self._stacked: bool | None = None
        self._place(stacked=False)

    @property
    def stacked(self) -> bool:
        return bool(self._stacked)

    def _needed(self) -> int:
        return self.left.sizeHint().width() + self.right.sizeHint().width() + self._spacing

    def _place(self, *, stacked: bool) -> None:
        if stacked == self._stacked:
            return
        self._stacked = stacked
        self._grid.removeWidget(self.left)
        self._grid.removeWidget(self.right)
        self._grid.addWidget(self.left, 0, 0)
        self._grid.addWidget(self.right, 1 if stacked else 0, 0 if stacked else 1)
        self._grid.setColumnStretch(0, 1)
        self._grid.setColumnStretch(1, 0 if stacked else 1)
        # The minimum is the wider group's own minimum: stacking is what lets the
        # strip get narrower than both groups side by side.
        self.setMinimumWidth(max(self.left.minimumSizeHint().width(), self.right.minimumSizeHint().width()))

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._place(stacked=event.size().width() < self._needed())
        super().resizeEvent(event)
