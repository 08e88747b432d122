"""Shared fixtures. The tiny model is the real stable-audio-tools classes with random weights."""

from __future__ import annotations

import os

import pytest

from support.audio import skip_without_audio

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model():
    from steerbridge.engine import load_model

    return load_model("tiny")


@pytest.fixture()
def tiny(tiny_model):
    """The session's tiny model, with steering detached again after each test."""
    yield tiny_model
    tiny_model.detach_steering()


# --- real audio ports: see support/audio.py ---------------------------------
@pytest.fixture(scope="session")
def jack_server() -> None:
    """Skip (or fail, in CI) unless a JACK server answers; start one with `bash .ci/jack.sh`."""
    from steerbridge.bridge.audio.portaudio import jack_running

    if not jack_running():
        skip_without_audio("no JACK server running (start one: `bash .ci/jack.sh`, needs jackd2 + libportaudio2)")
