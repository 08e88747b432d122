"""The panel's Link toggle, with a test peer, in a loopback-only network namespace (support/netns.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("aalink", reason="the Link extra is not installed: pip install 'steerbridge[link]'")

from support.netns import loopback_only  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET = f"""\
[model]
source = "tiny"
steps = 2

[scene]
prompt = "test loop with piano"
seed = 7
seconds = 1.0
bars = 1

[[knob]]
name = "mood"
vector = "{ROOT / 'presets' / 'vectors' / 'tiny' / 'mood.safetensors'}"
stops = 2
"""


def pump_until(app, predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.01)
    return False


@loopback_only
def test_link_toggle_joins_the_band_and_shows_its_tempo(tmp_path):
    from PyQt6.QtWidgets import QApplication

    from steerbridge.bridge.audio.bars import bar_seconds
    from steerbridge.bridge.live.session import SessionOptions
    from steerbridge.gui.app import create_panel, settings_at
    from support.linkpeer import Peer

    app = QApplication.instance() or QApplication([])
    (tmp_path / "panel.toml").write_text(PRESET)
    options = SessionOptions(output="null", osc=None, midi=None, engine="inprocess", progress=False, grid="none")
    window = create_panel(tmp_path / "panel.toml", options=options, settings=settings_at(tmp_path / "settings.ini"))
    window.ask_before_close = False
    window.show()
    peer = Peer(100.0)
    try:
        c = window.controller
        assert pump_until(app, lambda: c.phase in ("running", "failed"), 300), c.phase
        assert c.phase == "running" and c.session.link is None and window.link_bar.label.text() == "off"
        assert c.session.state.snapshot().seconds == 1.0  # without Link: the preset's seconds
        window.link_bar.check.setChecked(True)  # the user turns Link on
        assert pump_until(app, lambda: c.phase == "running" and c.session.link is not None
                          and c.session.link.status().peers == 1, 300), c.phase
        peer.link.tempo = 100.0
        assert pump_until(app, lambda: "100.00 BPM, 1 peer" in window.link_bar.label.text(), 10), \
            window.link_bar.label.text()
        assert c.session.state.snapshot().seconds == pytest.approx(bar_seconds(1, 100.0))
        window.link_bar.check.setChecked(False)
        assert pump_until(app, lambda: c.phase == "running" and c.session.link is None
                          and window.link_bar.label.text() == "off", 300)
    finally:
        window.close()
        peer.close()
