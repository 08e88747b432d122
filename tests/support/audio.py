"""Skipping tests that need real audio ports, with the install step that brings them."""

from __future__ import annotations

import os

import pytest

__all__ = ["skip_without_audio", "require_portaudio"]


# A newcomer's `make test` has neither PortAudio nor JACK: those tests skip and
# say which install step brings them. CI sets STEERBRIDGE_REQUIRE_AUDIO=1 after
# starting JACK, and then a missing piece fails the run instead of skipping.
def skip_without_audio(reason: str) -> None:
    if os.environ.get("STEERBRIDGE_REQUIRE_AUDIO") == "1":
        pytest.fail(f"STEERBRIDGE_REQUIRE_AUDIO=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def require_portaudio() -> None:
    """Skip (or fail, in CI) unless the PortAudio library loads."""
    from steerbridge.bridge.audio.portaudio import SinkUnavailable, import_sounddevice

    try:
        import_sounddevice()
    except SinkUnavailable:
        skip_without_audio("the PortAudio library is not installed (`apt-get install libportaudio2`, "
                           "or `bash .ci/jack.sh` as root for PortAudio + a JACK server)")
