"""`steerbridge serve`: the headless live runtime (engine worker, OSC, MIDI, audio)."""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
import threading
from typing import Any

__all__ = ["register", "run"]

_EPILOG = """\
outputs (--output):
  default          the default PortAudio output (JACK's when a JACK server runs)
  NAME or INDEX    a PortAudio device, e.g. "system" or 0 (list them: python -m sounddevice)
  wav:DIR          no audio; every rendered loop is written to DIR as a 32-bit float WAV
                   and announced to OSC subscribers as /steer/loop (for Max/Ableton)
  null             no audio, an offline clock (headless machines, tests)
  If the device cannot be opened, serve says why and falls back to null.

control:
  OSC on --osc (default 127.0.0.1:9000): /steer/knob/<name> f (0..1), /steer/alpha/<name> f,
  /steer/prompt s, /steer/seed i, /steer/play, /steer/stop, /steer/subscribe [port], ...
  MIDI: every input port plus a virtual input named "steerbridge", CC bindings from the preset.

examples:
  steerbridge serve --preset presets/demo.toml
  steerbridge serve --preset presets/demo.toml --output wav:out/loops \
      --osc 0.0.0.0:9000 --osc-allow-remote --osc-allow 192.168.1.0/24
  steerbridge serve --preset presets/demo.toml --output null --no-midi --json
Ctrl-C stops everything cleanly."""


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="play a preset live: knobs over OSC/MIDI steer the loops you hear",
        description="Load a preset, start the engine in a worker process, pre-render the knobs' alpha stops, "
                    "then play loops that follow the knobs (OSC, MIDI) until Ctrl-C.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", required=True, metavar="FILE", help="preset TOML file (see presets/demo.toml)")
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
    p.add_argument("--in-process", action="store_true",
                   help="render in this process instead of a worker (debugging; rendering can cause dropouts)")
    p.add_argument("--grid", choices=("full", "near", "none"), default="full",
                   help="pre-render every alpha stop (full), only those around the knobs (near), or none")
    p.add_argument("--cache-mb", type=float, default=512.0, help="loop cache size (default: %(default)s MB)")
    p.add_argument("--swap", choices=("boundary", "now"), default="boundary",
                   help="a new prompt/seed starts at the loop boundary (default) or at once")
    p.add_argument("--no-prerender", action="store_true", help="start playing at once; loops arrive as rendered")
    p.add_argument("--json", action="store_true",
                   help="print the status as one JSON object when ready and one when stopped (stdout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from steerbridge.bridge.cli.common import emit_json, fail
    from steerbridge.bridge.engine_link.client import EngineJobError
    from steerbridge.bridge.presets.model import PresetError
    from steerbridge.bridge.live.session import Session, SessionOptions
    from steerbridge.bridge.audio.sinks import SinkUnavailable

    if not 0 < args.blocksize <= 8192:
        return fail(f"--blocksize {args.blocksize}: use 1..8192 frames (256 is a good start)")
    try:
        latency = _latency(args.latency)
        options = SessionOptions(
            output=args.output, blocksize=args.blocksize, latency=latency, hostapi=args.hostapi,
            osc=None if args.no_osc else args.osc, midi=None if args.no_midi else tuple(args.midi),
            osc_allow_remote=args.osc_allow_remote, osc_allowed=tuple(args.osc_allow),
            autosave=None if args.autosave == "off" else args.autosave,
            engine="inprocess" if args.in_process else "worker", cache_mb=args.cache_mb, grid=args.grid,
            swap=args.swap, progress=not args.json or sys.stderr.isatty())
        session = Session(args.preset, options=options)
    except (PresetError, ValueError) as exc:
        return fail(str(exc))
    if not args.json:
        session.subscribe(lambda e: print(f"steerbridge: {e.source}: {e.message}", file=sys.stderr)
                          if e.kind == "error" else None)
    # SIGTERM (systemd, docker stop) shuts down like Ctrl-C; `kill -USR1 PID` prints every
    # thread's stack to stderr (for a stuck shutdown or render) and keeps serving.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # serve always stops on SIGINT, however it was started: a child inherits its parent's
    # SIGINT disposition (POSIX shells ignore it for background jobs, and Python keeps an
    # inherited SIG_IGN) and the parent thread's signal mask (native audio/MIDI libraries
    # may block signals in the thread that launches us). Seen as a serve that Ctrl-C did not
    # stop when launched from the full test run.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    code = 0
    try:
        session.start(prerender=not args.no_prerender)
        status = session.status()
        if args.json:
            emit_json({"event": "ready", **status.as_dict()})
        else:
            print(f"steerbridge: {status.summary()}. Ctrl-C to stop.", file=sys.stderr)
        threading.Event().wait()  # the work happens on other threads until Ctrl-C
    except KeyboardInterrupt:
        print("steerbridge: stopping ...", file=sys.stderr)
    except (ValueError, SinkUnavailable) as exc:  # bad options or output found while starting; says the fix
        code = fail(str(exc))
    except EngineJobError as exc:  # the model would not load
        code = fail(str(exc), code=1)
    finally:
        final = session.status() if session.player is not None else None
        session.close()
    if final is not None and code == 0:
        if args.json:
            emit_json({"event": "stopped", **final.as_dict()})
        else:
            print(f"steerbridge: stopped; underruns {final.underruns}, xruns {final.xruns}", file=sys.stderr)
    return code


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _latency(text: str | None) -> float | str | None:
    if text is None or text in ("low", "high"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--latency {text!r}: give seconds (e.g. 0.01) or low/high") from None
