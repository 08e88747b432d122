"""`steerbridge gui`: the Qt panel, driving the same session `serve` runs.

Imports go one way (gui -> bridge): this module never imports ``gui`` at
module level. The panel is loaded by name inside :func:`run`, which also
keeps `steerbridge --help` free of Qt.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

__all__ = ["register", "run"]

_EPILOG = """\
The panel: one knob per preset knob (drag, wheel, arrow keys; double-click resets),
MIDI learn per knob, prompt/seed/loop length, play/stop, output and volume, the loop
playing now with its playhead, engine status and OSC/MIDI activity. OSC and MIDI work
as with `serve` while the panel is open.

examples:
  steerbridge gui                                  # the last preset used, else presets/demo.toml
  steerbridge gui --preset presets/demo.toml
  steerbridge gui --preset my.toml --output null --no-midi"""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "gui", help="the Qt control panel: knobs, scene, waveform, presets (needs PyQt6)",
        description="Open the steerbridge panel on a preset: the engine runs in a worker process, "
                    "the panel never waits for it.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", metavar="FILE", help="preset TOML file (default: the last one used, else the demo)")
    p.add_argument("--output", default="default", metavar="DEVICE|wav:DIR|null",
                   help="where the audio goes (default: %(default)s; the panel can switch it)")
    p.add_argument("--osc", default="127.0.0.1:9000", metavar="HOST:PORT", help="OSC server (default: %(default)s)")
    p.add_argument("--no-osc", action="store_true", help="do not serve OSC")
    p.add_argument("--midi", nargs="+", default=[], metavar="PORT",
                   help="MIDI input ports; default: all, plus the virtual port 'steerbridge'")
    p.add_argument("--no-midi", action="store_true", help="do not open MIDI ports")
    p.add_argument("--blocksize", type=int, default=256, metavar="N", help="audio block size (default: %(default)s)")
    p.add_argument("--grid", choices=("full", "near", "none"), default="full",
                   help="which alpha stops to pre-render (default: %(default)s)")
    p.add_argument("--in-process", action="store_true",
                   help="render in the panel's process instead of a worker (debugging)")
    p.add_argument("--settings", metavar="FILE", help="an INI file for the panel's settings (recent presets)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from steerbridge.bridge.cli.common import fail
    from steerbridge.bridge.live.session import SessionOptions

    if not 0 < args.blocksize <= 8192:
        return fail(f"--blocksize {args.blocksize}: use 1..8192 frames (256 is a good start)")
    try:
        app = importlib.import_module("steerbridge.gui.app")  # by name: bridge never imports gui at module level
    except ImportError as exc:
        return fail(f"the panel needs PyQt6 ({exc}); install it with `pip install 'steerbridge[gui]'`")
    options = SessionOptions(
        output=args.output, blocksize=args.blocksize, osc=None if args.no_osc else args.osc,
        midi=None if args.no_midi else tuple(args.midi), engine="inprocess" if args.in_process else "worker",
        grid=args.grid, progress=False)
    return int(app.run(preset=args.preset, options=options, settings_path=args.settings))
