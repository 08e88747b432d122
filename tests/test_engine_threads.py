"""The render worker's torch threads: every core by default, whatever OMP_NUM_THREADS says; --engine-threads sets it."""

from __future__ import annotations

import argparse
import os

import pytest

from steerbridge.bridge.cli.session_flags import add_session_flags, session_options
from steerbridge.bridge.engine_link.factory import make_client
from steerbridge.bridge.engine_link.worker import render_threads


def test_default_is_every_core_this_process_may_use(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # a shell setting must not slow the live engine down
    assert render_threads() == len(os.sched_getaffinity(0))
    assert render_threads(3) == 3
    with pytest.raises(ValueError, match="at least 1"):
        render_threads(0)


def test_the_flag_reaches_the_worker_client() -> None:
    parser = argparse.ArgumentParser()
    add_session_flags(parser, preset_help="", preset_required=False)
    options = session_options(parser.parse_args(["--engine-threads", "2"]), progress=False)
    assert options.engine_threads == 2
    assert session_options(parser.parse_args([]), progress=False).engine_threads is None
    with pytest.raises(ValueError, match="--engine-threads 0"):
        session_options(parser.parse_args(["--engine-threads", "0"]), progress=False)
    client = make_client("worker", source="tiny", threads=2)  # not started: no process yet
    assert client._threads == 2  # noqa: SLF001 - handed to worker_main, which sets torch's thread count
