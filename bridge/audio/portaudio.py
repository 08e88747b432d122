"""PortAudio (python-sounddevice) lookup: importing it safely and finding an output.

What this knows about the machines steerbridge runs on:

- ``import sounddevice`` raises ``OSError`` when the PortAudio library is not
  installed (Debian: ``libportaudio2``). We turn that into
  :class:`SinkUnavailable` with the fix, so ``serve`` can fall back.
- PortAudio lists host APIs once, when it initialises. A JACK server started
  after that is invisible until PortAudio is re-initialised;
  :func:`resolve_output_device` does that once when JACK is asked for but not
  listed (only while no stream is open).
- libjack tries to *start* a server when none runs (``~/.jackdrc``);
  ``JACK_NO_START_SERVER=1`` stops that, so probing never spawns a jackd.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from types import ModuleType
from typing import Any

__all__ = ["JACK_HOSTAPI", "SinkUnavailable", "import_sounddevice", "resolve_output_device",
           "output_devices", "jack_running"]

JACK_HOSTAPI = "JACK Audio Connection Kit"


class SinkUnavailable(RuntimeError):
    """The requested output cannot be opened; the message says why and how to fix it."""


def import_sounddevice() -> ModuleType:
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    try:
        import sounddevice
    except OSError as exc:  # raised at import when libportaudio is missing
        raise SinkUnavailable(f"PortAudio is not installed ({exc}); install it with "
                              "`apt-get install libportaudio2` (Debian/Ubuntu) or `brew install portaudio`") from None
    return sounddevice


def jack_running() -> bool:
    """True when a JACK server answers (``jack_wait -c``; False when the tools are missing)."""
    tool = shutil.which("jack_wait")
    if tool is None:
        return False
    try:
        done = subprocess.run([tool, "-c"], capture_output=True, text=True, timeout=5,
                              env={**os.environ, "JACK_NO_START_SERVER": "1"})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.stdout.strip() == "running"  # it exits 0 either way


def output_devices(sd: ModuleType) -> list[tuple[int, str, str]]:
    """``(index, device name, host API name)`` of every device with output channels."""
    apis = sd.query_hostapis()
    return [(i, d["name"], apis[d["hostapi"]]["name"])
            for i, d in enumerate(sd.query_devices()) if d["max_output_channels"] > 0]


def _api_matches(api_name: str, hostapi: str) -> bool:
    if hostapi == "jack":
        return api_name == JACK_HOSTAPI
    return hostapi.lower() in api_name.lower()


def _reinitialise(sd: ModuleType) -> None:
    # Private sounddevice calls, the only way to make PortAudio list host APIs
    # again; safe only while no stream is open (we call it before opening one).
    sd._terminate()
    sd._initialize()


def resolve_output_device(sd: ModuleType, device: int | str | None, *,
                          hostapi: str = "auto") -> tuple[int, dict[str, Any], str]:
    """Find the output ``device`` (None: default; int: index; str: part of its name).

    ``hostapi``: ``"auto"`` prefers JACK when it is listed, ``"jack"`` insists
    on it, any other string must be part of the host API's name ("ALSA").
    Returns ``(index, device info, host API name)``.
    """
    try:
        outputs = output_devices(sd)
        if hostapi == "jack" and not any(api == JACK_HOSTAPI for _, _, api in outputs) and jack_running():
            _reinitialise(sd)
            outputs = output_devices(sd)
    except sd.PortAudioError as exc:
        raise SinkUnavailable(f"PortAudio could not list devices: {exc}") from None
    listing = "; ".join(f"{i}: {name} ({api})" for i, name, api in outputs) or "none"
    if not outputs:
        wanted = f" (host API {hostapi!r} asked for)" if hostapi != "auto" else ""
        raise SinkUnavailable(f"no audio output device found{wanted} (no sound card, no JACK server); start one with "
                              "`bash .ci/jack.sh` (JACK dummy driver) or use --output wav:DIR / null")
    candidates = outputs
    if hostapi != "auto":
        candidates = [o for o in outputs if _api_matches(o[2], hostapi)]
        if not candidates:
            raise SinkUnavailable(f"no output on host API {hostapi!r}; outputs: {listing}"
                                  + ("; is the JACK server running? (`bash .ci/jack.sh`)" if hostapi == "jack" else ""))
    if isinstance(device, int):
        match = [o for o in candidates if o[0] == device]
        if not match:
            raise SinkUnavailable(f"output device {device} does not exist; outputs: {listing}")
    elif isinstance(device, str):
        match = [o for o in candidates if device.lower() in o[1].lower()]
        if not match:
            raise SinkUnavailable(f"no output device matching {device!r}; outputs: {listing}")
    else:
        jack = [o for o in candidates if o[2] == JACK_HOSTAPI]
        default = sd.default.device[1] if isinstance(sd.default.device, (tuple, list)) else sd.default.device
        match = jack or [o for o in candidates if o[0] == default] or candidates
    if isinstance(device, str) and hostapi == "auto":
        match = [o for o in match if o[2] == JACK_HOSTAPI] or match
    index, _, api = match[0]
    return index, dict(sd.query_devices(index)), api
