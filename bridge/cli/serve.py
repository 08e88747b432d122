"""`steerbridge serve`: the headless live runtime (engine worker, OSC, MIDI, audio)."""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
import threading
from typing import Any

from steerbridge.bridge.cli.session_flags import (check_link, preset_path, session_options, session_parser,
                                                  session_preset)

__all__ = ["register", "run"]

_EPILOG = """\
control:
  OSC on --osc (default 127.0.0.1:9000): /steer/knob/<name> f (0..1), /steer/alpha/<name> f,
  /steer/prompt s, /steer/seed i, /steer/play, /steer/stop, /steer/subscribe [port], ...
  MIDI: every input port plus a virtual input named "steerbridge", CC bindings from the preset.

examples:
  steerbridge serve --preset demo                  # the shipped demo preset
  steerbridge serve --preset presets/demo.toml --output wav:out/loops \\
      --osc 0.0.0.0:9000 --osc-allow-remote --osc-allow 192.168.1.0/24
  steerbridge serve --preset presets/demo.toml --output null --no-midi --json
  steerbridge serve --preset demo --link            # in time with Ableton Live (pip install 'steerbridge[link]')
  steerbridge serve --preset my.toml --family sao-diffusers   # a model folder whose files do not name its family
Ctrl-C stops everything cleanly."""


def register(subparsers: Any) -> None:
    p = session_parser(
        subparsers, "serve", help="play a preset live: knobs over OSC/MIDI steer the loops you hear",
        description="Load a preset, start the engine in a worker process, pre-render the knobs' alpha stops, "
                    "then play loops that follow the knobs (OSC, MIDI) until Ctrl-C.", epilog=_EPILOG,
        preset_required=True, preset_help="preset TOML file, or a shipped preset's name (demo, tiny)")
    p.add_argument("--no-prerender", action="store_true", help="start playing at once; loops arrive as rendered")
    p.add_argument("--json", action="store_true",
                   help="print the status as one JSON object when ready and one when stopped (stdout); "
                        "progress goes to stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from steerbridge.bridge.audio.sinks import SinkUnavailable
    from steerbridge.bridge.cli.common import emit_json, fail
    from steerbridge.bridge.engine_link.client import EngineJobError
    from steerbridge.bridge.live.session import Session
    from steerbridge.bridge.presets.model import PresetError

    try:
        options = session_options(args, progress=not args.json or sys.stderr.isatty())
        check_link(options, preset_path(args.preset))
        session = Session(session_preset(args), options=options)
    except (PresetError, ValueError, FileNotFoundError) as exc:
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
            link = f"; {session.link.status().summary()}" if session.link is not None else ""
            print(f"steerbridge: {status.summary()}{link}. Ctrl-C to stop.", file=sys.stderr)
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

