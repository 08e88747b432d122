"""The panel's look: a dark palette and one stylesheet, in one place.

Stages are dark and a bright window blinds the performer, so everything is
dark grey with one warm accent for what moves (knob arcs, the playhead) and
traffic-light colours only for state (heard / pending / error). Sizes are
large enough to read from a step away.
"""

from __future__ import annotations

from PyQt6.QtGui import QColor, QFont, QPalette
from PyQt6.QtWidgets import QApplication

__all__ = ["COLORS", "color", "apply_theme", "mono_font"]

COLORS: dict[str, str] = {
    "bg": "#17181b",
    "panel": "#212328",
    "panel_hi": "#2a2d33",
    "border": "#33363d",
    "text": "#e6e6e6",
    "text_dim": "#8b9099",
    "accent": "#ff9f1c",  # knob arcs, playhead, focus
    "accent_dim": "#7a4c10",
    "wave": "#4fc3f7",
    "wave_dim": "#1f4a5e",
    "heard": "#4caf50",
    "pending": "#ffc107",
    "idle": "#4a4d55",
    "error": "#ef5350",
    "osc": "#ab47bc",
    "midi": "#26c6da",
}


def color(name: str) -> QColor:
    return QColor(COLORS[name])


def mono_font(size: int = 10) -> QFont:
    font = QFont("DejaVu Sans Mono")
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setPointSize(size)
    return font


_STYLE = """
QWidget {{ background: {bg}; color: {text}; font-size: 11pt; }}
QMainWindow::separator {{ background: {border}; }}
QFrame#card {{ background: {panel}; border: 1px solid {border}; border-radius: 10px; }}
QFrame#card QLabel, QWidget#group {{ background: transparent; }}
QLabel#dim {{ color: {text_dim}; }}
QLabel#title {{ font-size: 13pt; font-weight: bold; letter-spacing: 1px; }}
QLabel#brand {{ color: {accent}; font-size: 12pt; font-weight: bold; letter-spacing: 3px; }}
QLabel#presetname {{ font-size: 12pt; }}
QLabel#alpha {{ color: {accent}; }}
QLabel#heading {{ color: {text_dim}; font-size: 9pt; font-weight: bold; letter-spacing: 2px; }}
QLabel#banner {{ background: #4a1f1f; color: #ffd7d7; border: 1px solid {error};
                 border-radius: 6px; padding: 6px 10px; }}
QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox {{
    background: {panel_hi}; border: 1px solid {border}; border-radius: 6px; padding: 5px 8px;
    selection-background-color: {accent_dim}; }}
QLineEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus, QComboBox:focus {{ border-color: {accent}; }}
QComboBox QAbstractItemView {{ background: {panel_hi}; selection-background-color: {accent_dim}; }}
QPushButton, QToolButton {{
    background: {panel_hi}; border: 1px solid {border}; border-radius: 6px; padding: 6px 12px; }}
QPushButton:hover, QToolButton:hover {{ border-color: {accent}; }}
QPushButton:pressed, QToolButton:pressed {{ background: {accent_dim}; }}
QPushButton:checked {{ background: {accent}; color: #1b1b1b; border-color: {accent}; font-weight: bold; }}
QToolButton::menu-indicator {{ image: none; width: 0px; }}
QPushButton#primary {{ background: {accent}; color: #1b1b1b; border-color: {accent}; font-weight: bold; }}
QPushButton#learn {{ padding: 3px 8px; font-size: 9pt; }}
QPushButton#learn:checked {{ background: {midi}; border-color: {midi}; }}
QSlider::groove:horizontal {{ height: 6px; background: {panel_hi}; border-radius: 3px; }}
QSlider::sub-page:horizontal {{ background: {accent}; border-radius: 3px; }}
QSlider::handle:horizontal {{ background: {text}; width: 14px; margin: -5px 0; border-radius: 7px; }}
QProgressBar {{ background: {panel_hi}; border: 1px solid {border}; border-radius: 5px; text-align: center;
                height: 16px; font-size: 9pt; }}
QProgressBar::chunk {{ background: {wave_dim}; border-radius: 4px; }}
QMenuBar {{ background: {bg}; }}
QMenuBar::item:selected, QMenu::item:selected {{ background: {accent_dim}; }}
QMenu {{ background: {panel}; border: 1px solid {border}; }}
QStatusBar {{ background: {bg}; color: {text_dim}; }}
QToolTip {{ background: {panel_hi}; color: {text}; border: 1px solid {border}; }}
"""


def apply_theme(app: QApplication) -> None:
    """Fusion style (same look on every OS), a dark palette and the stylesheet."""
    app.setStyle("Fusion")
    pal = QPalette()
    for role, name in ((QPalette.ColorRole.Window, "bg"), (QPalette.ColorRole.Base, "panel_hi"),
                       (QPalette.ColorRole.AlternateBase, "panel"), (QPalette.ColorRole.Button, "panel_hi"),
                       (QPalette.ColorRole.Text, "text"), (QPalette.ColorRole.WindowText, "text"),
                       (QPalette.ColorRole.ButtonText, "text"), (QPalette.ColorRole.Highlight, "accent"),
                       (QPalette.ColorRole.ToolTipBase, "panel_hi"), (QPalette.ColorRole.ToolTipText, "text")):
        pal.setColor(role, color(name))
    app.setPalette(pal)
    font = QFont("DejaVu Sans")
    font.setPointSize(11)
    app.setFont(font)
    app.setStyleSheet(_STYLE.format(**COLORS))
