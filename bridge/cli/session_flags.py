"""The live-session flags that `serve` and `gui` share: one definition, one meaning.

Both commands run the same :class:`~steerbridge.bridge.live.session.Session`;
only what wraps it differs (a headless wait for Ctrl-C, or the Qt panel).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from steerbridge.bridge.live.session import SessionOptions
    from steerbridge.bridge.presets.model import Preset

__all__ = ["session_parser", "add_session_flags", "session_options", "check_link", "preset_path", "session_preset",
           "check_family", "OUTPUTS_HELP"]

OUTPUTS_HELP = """\
outputs (--output):
  default          the default PortAudio output (JACK's when a JACK server runs)
  NAME or INDEX    a PortAudio device, e.g. "system" or 0 (list them: python -m sounddevice)
  wav:DIR          no audio; every rendered loop is written to DIR as a 32-bit float WAV
                   and announced to OSC subscribers as /steer/loop (for Max/Ableton)
  null             no audio, an offline clock (headless machines, tests)
  If the device cannot be opened, steerbridge says why and falls back to null."""


def session_parser(subparsers: Any, name: str, *, help: str, description: str, epilog: str,
                   preset_required: bool, preset_help: str) -> argparse.ArgumentParser:
    """A sub-command parser carrying the session flags, with the outputs explained after ``epilog``."""
    p = subparsers.add_parser(name, help=help, description=description, epilog=f"{epilog}\n\n{OUTPUTS_HELP}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_session_flags(p, preset_required=preset_required, preset_help=preset_help)
    return p


def add_session_flags(p: argparse.ArgumentParser, *, preset_help: str, preset_required: bool) -> None:
    """Add the flags that build a :class:`SessionOptions` (see :func:`session_options`)."""
    p.add_argument("--preset", required=preset_required, metavar="FILE|NAME", help=preset_help)
    p.add_argument("--family", metavar="FAMILY",
                   help="the model family of the preset's model folder, when its files do not say (overrides the "
                        "preset's `family`; `steerbridge doctor` lists the families)")
    p.add_argument("--output", default="default", metavar="DEVICE|wav:DIR|null",
                   help="where the audio goes (default: %(default)s)")
    p.add_argument("--osc", default="127.0.0.1:9000", metavar="HOST:PORT",
                   help="OSC server address (default: %(default)s; port 0 picks a free one)")
    p.add_argument("--no-osc", action="store_true", help="do not serve OSC")
    p.add_argument("--osc-allow-remote", action="store_true",
                   help="allow --osc on a non-loopback address (needs --osc-allow too)")
    p.add_argument("--osc-allow", action="append", default=[], metavar="ADDR[/NET]",
                   help="sender address or network allowed to control the engine when remote (repeatable)")
    p.add_argument("--autosave", default="default", metavar="PATH|off",
                   help="live-state autosave file (default: beside the preset); 'off' to disable")
    p.add_argument("--midi", nargs="+", default=[], metavar="PORT",
                   help="MIDI input ports (names or unique parts of names); default: all, plus 'steerbridge'")
    p.add_argument("--no-midi", action="store_true", help="do not open MIDI ports")
    p.add_argument("--blocksize", type=int, default=256, metavar="N",
                   help="audio block size in frames (default: %(default)s; smaller = lower knob latency)")
    p.add_argument("--latency", default=None, metavar="SECONDS|low|high",
                   help="PortAudio output latency (default: low)")
    p.add_argument("--hostapi", default="auto", metavar="API",
                   help="'auto' (JACK when running), 'jack', or part of a host API name such as ALSA")
    p.add_argument("--engine", metavar="tcp://HOST:PORT",
                   help="render on a `steerbridge engine-server` (e.g. a GPU box) instead of a local worker")
    p.add_argument("--engine-token", metavar="FILE",
                   help="that server's token file (default: ~/.config/steerbridge/engine.token)")
    p.add_argument("--engine-threads", type=int, default=None, metavar="N",
                   help="torch threads the local render worker uses (default: every core; the worker runs at a "
                        "lower priority, so audio still comes first)")
    p.add_argument("--in-process", action="store_true",
                   help="render in this process instead of a worker (debugging; rendering can cause dropouts)")
    p.add_argument("--grid", choices=("full", "near", "none"), default="full",
                   help="pre-render the stops along each knob's axis from the current point (full), only each "
                        "knob's two neighbouring stops (near), or none (exact renders only)")
    p.add_argument("--cache-mb", type=float, default=512.0, help="loop cache size (default: %(default)s MB)")
    p.add_argument("--swap", choices=("boundary", "now"), default="boundary",
                   help="a new prompt/seed starts at the loop boundary (default) or at once")
    link = p.add_mutually_exclusive_group()
    link.add_argument("--link", dest="link", action="store_true", default=None,
                      help="join Ableton Link: loops last the preset's `bars` at the Link tempo, start on its bar "
                           "lines, follow its tempo and start/stop (needs: pip install 'steerbridge[link]'; "
                           "default: the preset's `link`)")
    link.add_argument("--no-link", dest="link", action="store_false", help="do not join Link, whatever the preset says")
    p.add_argument("--quantum", type=float, default=4.0, metavar="BEATS",
                   help="beats per bar with Link (default: %(default)s, Live's 1-bar quantum)")


def session_options(args: argparse.Namespace, *, progress: bool) -> SessionOptions:
    """The options the flags describe; ValueError with the fix for a bad value."""
    from steerbridge.bridge.live.session import SessionOptions

    if not 0 < args.blocksize <= 8192:
        raise ValueError(f"--blocksize {args.blocksize}: use 1..8192 frames (256 is a good start)")
    if args.engine_threads is not None and args.engine_threads < 1:
        raise ValueError(f"--engine-threads {args.engine_threads}: give 1 or more (or leave it out: every core)")
    if not 0 < args.quantum <= 64:
        raise ValueError(f"--quantum {args.quantum}: give the beats per bar, 1..64 (4 for 4/4)")
    return SessionOptions(
        output=args.output, blocksize=args.blocksize, latency=_latency(args.latency), hostapi=args.hostapi,
        osc=None if args.no_osc else args.osc, midi=None if args.no_midi else tuple(args.midi),
        osc_allow_remote=args.osc_allow_remote, osc_allowed=tuple(args.osc_allow),
        autosave=None if args.autosave == "off" else args.autosave,
        engine=_engine(args), engine_token_file=args.engine_token, cache_mb=args.cache_mb, grid=args.grid,
        swap=args.swap, progress=progress, link=args.link, link_quantum=args.quantum,
        engine_threads=args.engine_threads)


def check_link(options: SessionOptions, preset: Path | None) -> None:
    """Fail before anything starts when Link is asked for (flag or preset) but its extra is missing."""
    from steerbridge.bridge.presets.model import load_preset

    wanted = options.link if options.link is not None else (preset is not None and load_preset(preset).scene.link)
    if wanted:
        from steerbridge.bridge.live.link import LinkUnavailable, import_aalink

        try:
            import_aalink()
        except LinkUnavailable as exc:
            raise ValueError(str(exc)) from None


def _engine(args: argparse.Namespace) -> str:
    if args.engine is not None:
        from steerbridge.bridge.engine_link.factory import client_key
        from steerbridge.bridge.engine_link.remote import check_address

        if args.in_process:
            raise ValueError("--engine and --in-process both say where to render; pick one")
        address = check_address(args.engine)
        client_key(args.engine_token)  # a missing or readable-by-others token file: said now, not mid-start
        return address
    return "inprocess" if args.in_process else "worker"


def check_family(name: str | None) -> str | None:
    """``--family`` as given, or a ValueError naming the known families (before any model loads)."""
    from steerbridge.engine.adapters.base import families

    if name is not None and name not in families():
        raise ValueError(f"--family {name!r} is not a model family steerbridge knows; give one of: "
                         f"{', '.join(families())}")
    return name


def session_preset(args: argparse.Namespace) -> Preset | Path | None:
    """``--preset`` as a file, or loaded with ``--family`` applied to its model (PresetError for a bad preset)."""
    from steerbridge.bridge.presets.model import load_preset

    path, family = preset_path(args.preset), check_family(args.family)
    return path if family is None or path is None else load_preset(path).with_family(family)


def preset_path(text: str | None) -> Path | None:
    """``--preset`` as a file: a path, or a shipped preset's name (``demo``, ``tiny``)."""
    from steerbridge.bridge.presets.shipped import resolve_preset

    return None if text is None else resolve_preset(text)


def _latency(text: str | None) -> float | str | None:
    if text is None or text in ("low", "high"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--latency {text!r}: give seconds (e.g. 0.01) or low/high") from None
