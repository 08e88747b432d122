"""The `steerbridge` command line.

Each subcommand lives in its own module in this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with
the parsed args, returns an exit code). Imports of heavy modules (torch, Qt)
happen inside ``func`` so that ``steerbridge --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

# Subcommand modules, in the order `--help` lists them.
_COMMANDS = ("demo", "serve", "gui", "render", "extract", "localize", "bench", "export_onnx", "engine_server", "doctor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steerbridge",
        description=(
            "Play a text-to-music diffusion model live: knobs (MIDI CC, OSC, the Qt panel) "
            "set the strength of concept vectors added inside the model while it renders loops."
        ),
        epilog="Run `steerbridge COMMAND --help` for each command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        try:
            module = importlib.import_module(f"steerbridge.bridge.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"steerbridge.bridge.cli.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
