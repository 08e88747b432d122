"""`steerbridge demo`: the main job, on a fresh machine, with nothing to download.

On a machine with an audio output it serves the bundled demo preset live
(`steerbridge serve`: knobs by MIDI, OSC or `steerbridge gui`) and plays it;
without one it renders a steered sweep of one knob (same prompt, same seed,
knob from 0 to 1) to WAV files and a spectrogram-grid picture and says where
they are. ``--play`` / ``--render`` choose instead of asking the machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    from steerbridge.bridge.cli.common import add_json_flag

    p = sub.add_parser("demo", help="the main job: a steered sweep (WAVs + picture), or --play to serve live",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="demo", help="preset file or shipped name (default: %(default)s)")
    p.add_argument("--knob", help="knob to sweep (default: the preset's first knob)")
    p.add_argument("--stops", type=int, default=5, help="number of knob values in the sweep (default 5)")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default: out/demo)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--play", action="store_true", help="serve the preset live (default when an audio output exists)")
    mode.add_argument("--render", action="store_true", help="render the sweep offline (default without audio output)")
    p.add_argument("--output", default="default", help="live: audio device, wav:DIR or null (default: default)")
    add_json_flag(p)
    p.set_defaults(func=run)


def _audio_output() -> str | None:
    """The default audio output as "name (host API)", or None when PortAudio or a device is missing."""
    from steerbridge.bridge.audio.portaudio import SinkUnavailable, import_sounddevice, resolve_output_device

    try:
        sd = import_sounddevice()
        _, info, api = resolve_output_device(sd, None)
    except (SinkUnavailable, OSError, ValueError, RuntimeError):
        return None
    return f"{info['name']} ({api})"


def run(args: argparse.Namespace) -> int:
    from steerbridge.bridge.cli import main
    from steerbridge.bridge.cli.common import fail
    from steerbridge.bridge.presets.model import PresetError, load_preset
    from steerbridge.bridge.presets.shipped import resolve_preset

    try:
        path = resolve_preset(args.preset)
        preset = load_preset(path)
    except (PresetError, OSError) as exc:
        return fail(str(exc))
    device = None if args.render else _audio_output()
    if args.play or device is not None:
        if not args.json:
            print(f"Serving {path.name} live on {device or args.output}; Ctrl-C stops. "
                  "(`steerbridge demo --render` renders the offline sweep instead.)", flush=True)
        return main(["serve", "--preset", str(path), "--output", args.output])
    if not preset.knobs:
        return fail(f"{path} has no [[knob]] to sweep")
    knob = args.knob or preset.knobs[0].name
    # The same command line a user would type: demo runs render's own code path.
    code = main(["render", "--preset", str(path), "--sweep", f"{knob}=0:1:{args.stops}", "--out", str(args.out),
                 *(["--json"] if args.json else [])])
    if code == 0 and not args.json:
        print(f"\nDemo sweep of knob '{knob}' from {path.name}: WAV files and the spectrogram grid are in "
              f"{args.out.resolve()}/ . No audio output was found (or --render was given): play the WAVs, "
              "or run `steerbridge demo --play` on a machine with audio to steer live.")
    return code
