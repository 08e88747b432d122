"""Render the panel offscreen to a PNG (the README's docs/panel.png).

    .venv/bin/python -m steerbridge.gui.screenshot [--preset demo] [--out docs/panel.png]

Runs the real panel on a preset (default: the shipped demo preset and its
demo model; in-process engine, null output, no MIDI, OSC on a free port), waits until the alpha stops are pre-rendered,
turns two knobs the way a performer would (one from the panel, one as if
from OSC, so its activity light is lit) and grabs the window once the exact
render is playing. No display is needed (Qt's offscreen platform).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", help="preset file or shipped name (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=_ROOT / "docs" / "panel.png")
    parser.add_argument("--size", default="1280x800", help="window size WIDTHxHEIGHT (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the pre-render")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PyQt6.QtWidgets import QApplication

    from steerbridge.bridge.live.session import SessionOptions
    from steerbridge.bridge.presets.shipped import resolve_preset
    from steerbridge.gui.app import create_panel, settings_at

    app = QApplication.instance() or QApplication(sys.argv[:1])
    options = SessionOptions(output="null", osc="127.0.0.1:0", midi=None, engine="inprocess", progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        window = create_panel(resolve_preset(args.preset), options=options, settings=settings_at(Path(tmp) / "panel.ini"))
        window.ask_before_close = False
        width, height = (int(x) for x in args.size.split("x"))
        window.resize(width, height)
        window.show()
        controller = window.controller

        def pump_until(done: object, timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                app.processEvents()
                if done():  # type: ignore[operator]
                    return True
                time.sleep(0.01)
            return False

        if not pump_until(lambda: controller.phase in ("running", "failed"), args.timeout):
            print("screenshot: the session did not start in time", file=sys.stderr)
            return 1
        session, monitor = controller.session, controller.monitor
        names = session.preset.knob_names()
        idle = lambda: session.scheduler.wait_idle(timeout=0)  # noqa: E731
        moves = [(0, 0.68, "gui"), (1, 0.3, "osc"), (2, 0.45, "osc")]  # a panel move, then two from OSC
        for index, value, source in moves[: len(names)]:
            session.state.set_value(names[index], value, source=source)
            pump_until(idle, args.timeout)
        if len(names) > 2:
            # Nudge the last knob over OSC and back: its exact render is cached, so the
            # loop is "heard" again at once while the OSC light still glows.
            session.state.set_value(names[2], 0.46, source="osc")
            session.state.set_value(names[2], 0.45, source="osc")
        pump_until(lambda: idle() and set(monitor.knob_status().values()) == {"heard"}, args.timeout)
        pump_until(lambda: False, 0.15)  # a few ticks so every widget shows the newest state
        args.out.parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(args.out))
        window.close()
    print(f"screenshot: {args.out}" if ok else f"screenshot: could not write {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
