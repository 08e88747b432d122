"""Entry points of the panel: :func:`run` (what ``steerbridge gui`` calls) and :func:`create_panel`.

``create_panel`` builds the window and controller on an existing
``QApplication`` without entering its event loop, so tests (pytest-qt) and
the screenshot script drive the very same panel a performer gets.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PyQt6.QtCore import QSettings
from PyQt6.QtWidgets import QApplication

from steerbridge.bridge.live.session import SessionOptions
from steerbridge.bridge.presets.model import Preset, PresetError, load_preset
from steerbridge.bridge.presets.shipped import shipped_dir
from steerbridge.gui.controller import ClientFactory, SessionController
from steerbridge.gui.presetfile import RecentPresets
from steerbridge.gui.theme import apply_theme
from steerbridge.gui.window import MainWindow

__all__ = ["run", "create_panel", "default_preset", "settings_at"]

log = logging.getLogger(__name__)


def settings_at(path: str | Path | None) -> QSettings:
    """The panel's settings (recent presets): an INI file at ``path``, else the user's settings."""
    if path is None:
        return QSettings("steerbridge", "panel")
    return QSettings(str(path), QSettings.Format.IniFormat)


def default_preset(recent: RecentPresets) -> Path | None:
    """The newest recent preset that still exists, else the shipped demo preset."""
    existing = recent.existing()
    if existing:
        return existing[0]
    demo = shipped_dir() / "demo.toml"
    return demo if demo.is_file() else None


def create_panel(preset: Preset | str | Path, *, options: SessionOptions, settings: QSettings | None = None,
                 client_factory: ClientFactory | None = None, poll_ms: int = 33) -> MainWindow:
    """Theme the running QApplication, build the window, start the session on ``preset``.

    Raises :class:`steerbridge.bridge.presets.model.PresetError` for a preset that does not load.
    """
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        raise RuntimeError("create a QApplication before create_panel()")
    apply_theme(app)
    controller = SessionController(options=options, client_factory=client_factory, poll_ms=poll_ms)
    recent = RecentPresets(settings if settings is not None else settings_at(None))
    window = MainWindow(controller, recent)
    try:
        controller.open(preset)
    except BaseException:
        controller.close()
        raise
    if isinstance(preset, (str, Path)):
        recent.add(Path(preset))
    elif preset.path is not None:
        recent.add(preset.path)
    return window


def run(*, preset: str | Path | None, options: SessionOptions, settings_path: str | Path | None = None,
        family: str | None = None) -> int:
    """Open the panel and run Qt's event loop until the window closes; returns an exit code.

    ``family`` (``--family``) loads the first preset's model folder as that family.
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("steerbridge")
    settings = settings_at(settings_path)
    if preset is None:
        preset = default_preset(RecentPresets(settings))
        if preset is None:
            print("steerbridge: error: no preset given, none used before and no shipped demo preset; "
                  "pass --preset FILE", file=sys.stderr)
            return 2
    try:
        first = preset if family is None else load_preset(preset).with_family(family)
        window = create_panel(first, options=options, settings=settings)
    except PresetError as exc:
        print(f"steerbridge: error: {exc}", file=sys.stderr)
        return 2
    window.show()
    return int(app.exec())
