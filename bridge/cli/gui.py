"""`steerbridge gui`: the Qt panel, driving the same session `serve` runs.

Imports go one way (gui -> bridge): this module never imports ``gui`` at
module level. The panel is loaded by name inside :func:`run`, which also
keeps `steerbridge --help` free of Qt.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from steerbridge.bridge.cli.session_flags import check_family, check_link, preset_path, session_options, session_parser

__all__ = ["register", "run"]

_EPILOG = """\
The panel: one knob per preset knob (drag, wheel, arrow keys; double-click resets),
MIDI learn per knob, prompt/seed/loop length, play/stop, output and volume, the loop
playing now with its playhead, engine status and OSC/MIDI activity. OSC and MIDI work
as with `serve` while the panel is open.

examples:
  steerbridge gui                                  # the last preset used, else the demo preset
  steerbridge gui --preset demo
  steerbridge gui --preset my.toml --output null --no-midi
  steerbridge gui --preset my.toml --family ace-step   # a model folder whose files do not name its family"""


def register(subparsers: Any) -> None:
    p = session_parser(
        subparsers, "gui", help="the Qt control panel: knobs, scene, waveform, presets (needs PyQt6)",
        description="Open the steerbridge panel on a preset: the engine runs in a worker process, "
                    "the panel never waits for it.", epilog=_EPILOG, preset_required=False,
        preset_help="preset TOML file or shipped name (default: the last one used, else demo)")
    p.add_argument("--settings", metavar="FILE", help="an INI file for the panel's settings (recent presets)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from steerbridge.bridge.cli.common import fail

    try:
        options = session_options(args, progress=False)
        preset, family = preset_path(args.preset), check_family(args.family)
        if options.link:  # the flag: fail before the panel opens (a preset's `link` shows in the panel)
            check_link(options, preset)
    except (ValueError, FileNotFoundError) as exc:
        return fail(str(exc))
    try:
        app = importlib.import_module("steerbridge.gui.app")  # by name: bridge never imports gui at module level
    except ImportError as exc:
        return fail(f"the panel needs PyQt6 ({exc}); install it with `pip install 'steerbridge[gui]'`")
    return int(app.run(preset=preset, options=options, settings_path=args.settings, family=family))
