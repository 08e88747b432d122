"""Helpers shared by the CLI commands: progress bars, JSON output, friendly errors.

Conventions every command follows:

- ``--out`` says where results go and is never required: a command that writes
  several files takes a folder, one that writes a single file takes that file,
  and each has a default under ``out/<command>/``.
- ``--json`` prints one JSON object with the results on stdout; progress and
  messages go to stderr.
- Progress is a bar on a terminal and one line per stage elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import typing as tp

__all__ = ["add_json_flag", "add_model_flags", "emit_json", "fail", "parse_pair", "ProgressBar"]


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one machine-readable JSON object on stdout (progress goes to stderr)")


def add_model_flags(parser: argparse.ArgumentParser, *, default: str | None = "tiny",
                    default_text: str = "tiny") -> None:
    """``--model`` (a built-in name or a folder) and ``--family`` (for a folder its files do not name)."""
    parser.add_argument("--model", default=default,
                        help="'tiny', 'demo', 'tiny:<family>' (a tiny random-weight model of that family, e.g. "
                             "tiny:sao-diffusers) or a model folder: stable-audio-tools (model_config.json) or "
                             f"diffusers (model_index.json), recognised by its files (default: {default_text})")
    parser.add_argument("--family", help="the model family of the --model folder, when its files do not say "
                                          "(`steerbridge doctor` lists the families)")


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
    """Progress on stderr (diffusion steps, or another ``unit``): a tqdm bar on a terminal.

    When stderr is not a terminal (a log file, a pipe, CI) a redrawn bar would
    leave hundreds of lines, so the stage gets one line when it starts and one
    when it ends instead. ``quiet`` silences both.
    """

    def __init__(self, *, total: int, desc: str, quiet: bool = False, unit: str = "step") -> None:
        from tqdm.auto import tqdm

        self._desc, self._total, self._done, self._unit = desc, total, 0, unit
        self._lines = not quiet and not sys.stderr.isatty()
        self._t0 = time.perf_counter()
        self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=quiet or self._lines,
                         leave=False)
        if self._lines:
            print(f"{desc}: {total} {unit}s ...", file=sys.stderr, flush=True)

    def update_to(self, done: int) -> None:
        if done > self._done:
            self._bar.update(done - self._done)
            self._done = done

    def close(self) -> None:
        self._bar.close()
        if self._lines:
            print(f"{self._desc}: {self._done}/{self._total} {self._unit}s in {time.perf_counter() - self._t0:.1f} s",
                  file=sys.stderr, flush=True)
            self._lines = False
