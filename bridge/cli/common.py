"""Helpers shared by the CLI commands: progress bars, JSON output, friendly errors."""

from __future__ import annotations

import argparse
import json
import sys
import typing as tp

__all__ = ["add_json_flag", "emit_json", "fail", "parse_pair", "ProgressBar"]


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one machine-readable JSON object on stdout (progress goes to stderr)")


def emit_json(obj: tp.Any) -> None:
    json.dump(obj, sys.stdout, indent=None, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()


def fail(message: str, *, code: int = 2) -> int:
    """Print an error the user can act on (no traceback) and return the exit code."""
    print(f"steerbridge: error: {message}", file=sys.stderr)
    return code


def parse_pair(text: str, *, what: str) -> tuple[str, str]:
    """``NAME=VALUE`` -> (NAME, VALUE) with a message that shows the expected form."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise ValueError(f"{what} {text!r} is not NAME=VALUE")
    return name.strip(), value.strip()


class ProgressBar:
    """A tqdm bar on stderr over diffusion steps; silent when stderr is not a terminal and quiet is set."""

    def __init__(self, *, total: int, desc: str, quiet: bool = False) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=quiet, leave=False)
        self._done = 0

    def update_to(self, done: int) -> None:
        if done > self._done:
            self._bar.update(done - self._done)
            self._done = done

    def close(self) -> None:
        self._bar.close()
