"""`steerbridge engine-server`: host the engine on this machine (a GPU box) for `--engine tcp://...` clients."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from steerbridge.engine.vocab import BACKENDS

__all__ = ["register", "run"]

EPILOG = """examples:
  steerbridge engine-server --model tiny                      # loopback, token in ~/.config/steerbridge
  steerbridge engine-server --model /models/sao --device cuda \\
      --bind tcp://0.0.0.0:5599 --allow-remote --token-file ~/steerbridge.token
  steerbridge engine-server --new-token ~/steerbridge.token   # write a token file and exit

then, on the laptop (with a copy of the token file):
  steerbridge serve --preset demo --engine tcp://studio-gpu.local:5599 --engine-token ~/steerbridge.token

Every message carries an HMAC under the token; a client without it is refused before any job
runs. The HMAC authenticates but does not encrypt: on an untrusted network, tunnel the port
(ssh -L 5599:127.0.0.1:5599 studio-gpu) and keep the server on loopback."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine-server", help="serve this machine's engine (GPU) to `--engine tcp://...` clients",
                       description="Load a model and serve render jobs over ZeroMQ to serve/gui/render running on "
                                   "another machine (or this one). Listens on loopback unless told otherwise.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="'tiny', 'demo', 'tiny:<family>' or a model folder "
                                                   "(default: tiny)")
    p.add_argument("--family", help="the model family of the --model folder, when its files do not say "
                                    "(`steerbridge doctor` lists the families)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda or cuda:1 (default: cpu)")
    p.add_argument("--backend", choices=BACKENDS, default="torch", help="denoiser backend (default: torch)")
    p.add_argument("--bind", default=None, metavar="tcp://HOST:PORT",
                   help="where to listen (default: tcp://127.0.0.1:5599; port 0 picks a free one)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow --bind beyond loopback (needs an explicit --token-file too)")
    p.add_argument("--token-file", type=Path,
                   help="shared token (default: ~/.config/steerbridge/engine.token, created if missing)")
    p.add_argument("--new-token", type=Path, metavar="PATH", help="write a new random token file and exit")
    p.add_argument("--json", action="store_true", help="print one JSON line when ready (address, model)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from steerbridge.bridge.cli.common import emit_json, fail
    from steerbridge.bridge.engine_link.server import is_loopback
    from steerbridge.bridge.engine_link.wire import DEFAULT_PORT, default_token_path, load_token, write_new_token

    if args.new_token is not None:
        print(f"wrote {write_new_token(args.new_token)}; copy it to the client machine and keep it private")
        return 0
    bind = args.bind or f"tcp://127.0.0.1:{DEFAULT_PORT}"
    remote = bind.startswith("tcp://") and not is_loopback(bind)
    if remote and (not args.allow_remote or args.token_file is None):
        return fail(f"--bind {bind} listens beyond this machine: add --allow-remote and --token-file FILE "
                    "(make one with --new-token FILE, then copy it to the client)")
    token_file = args.token_file or default_token_path()
    try:
        if args.token_file is None and not token_file.exists():
            write_new_token(token_file)
            print(f"steerbridge: wrote a new engine token to {token_file}", file=sys.stderr)
        key = load_token(token_file)
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    from steerbridge.bridge.engine_link.server import EngineServer
    from steerbridge.bridge.engine_link.worker import JobRunner
    from steerbridge.engine import EngineError

    print(f"steerbridge: loading {args.model!r} on {args.device} ...", file=sys.stderr)
    try:
        runner = JobRunner(args.model, device=args.device, backend=args.backend, family=args.family)
        server = EngineServer(runner, bind=bind, key=key, allow_remote=args.allow_remote)
    except (EngineError, ValueError) as exc:
        return fail(str(exc))
    except Exception as exc:  # zmq.ZMQError: address in use, bad interface
        if type(exc).__module__.startswith("zmq"):
            return fail(f"cannot listen on {bind}: {exc}; pick another --bind port")
        raise
    info = runner.info
    if args.json:
        emit_json({"event": "ready", "address": server.address, "model": info.source,
                   "fingerprint": info.fingerprint, "sample_rate": info.sample_rate, "token_file": str(token_file)})
    else:
        print(f"steerbridge: engine {info.source} ({info.fingerprint}) serving on {server.address}; clients use "
              f"--engine {server.address} --engine-token {token_file}. Ctrl-C to stop.", file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: server.stop_soon())
    # Ctrl-C stops it however it was started (a background job of a script inherits SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server.serve()
    except KeyboardInterrupt:
        print("steerbridge: engine server stopped", file=sys.stderr)
    return 0
