"""The session's control surfaces: its OSC server and MIDI inputs (either may be off)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.presets.model import Preset

if TYPE_CHECKING:
    from steerbridge.bridge.control.osc.server import OscServer

__all__ = ["ControlSurfaces", "parse_host_port"]

log = logging.getLogger(__name__)


def parse_host_port(text: str, *, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"`` or ``"PORT"`` -> (host, port)."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number < 65536:
        raise ValueError(f"OSC address {text!r}: expected HOST:PORT with a port 0..65535, e.g. 127.0.0.1:9000")
    return host or default_host, number


class ControlSurfaces:
    """The OSC server and MIDI inputs of a session (either may be off)."""

    def __init__(self, state: ControlState, *, say: Callable[[str], None],
                 on_error: Callable[[str, str], None] | None = None) -> None:
        self.state, self._say = state, say
        self._on_error = on_error or self.notify_error  # (kind, message): the session also tells the panel
        self.osc: OscServer | None = None
        self._midi_input: Any = None
        self._midi_router: Any = None
        self.midi_ports: tuple[str, ...] = ()
        self.extra_state: list[Callable[[], list[tuple[str, tuple[Any, ...]]]]] = []  # for new OSC subscribers

    @property
    def osc_address(self) -> str | None:
        return None if self.osc is None else "{}:{}".format(*self.osc.address)

    def start(self, *, osc: str | None, midi: Sequence[str] | None, presets_dir: Path,
              on_preset: Callable[[Preset], None], allow_remote: bool = False,
              allowed_senders: Sequence[str] = ()) -> None:
        if osc is not None:
            from steerbridge.bridge.control.osc.server import OscServer

            host, port = parse_host_port(osc)
            try:
                self.osc = OscServer(self.state, host=host, port=port, presets_dir=presets_dir,
                                     on_preset=on_preset, allow_remote=allow_remote,
                                     allowed_senders=tuple(allowed_senders)).start()
                self.osc.extra_state = self.extra_state
            except OSError as exc:
                raise ValueError(f"cannot serve OSC on {host}:{port} ({exc.strerror}); pick another port with "
                                 f"--osc {host}:{port + 1}, or --osc {host}:0 for any free port") from None
        if midi is not None:
            self._start_midi(tuple(midi))

    def _start_midi(self, ports: tuple[str, ...]) -> None:
        _prefer_jack_midi()
        from steerbridge.bridge.control.midi.router import MidiInput, MidiRouter, MidiUnavailable

        router = MidiRouter(self.state, on_error=lambda message: self._on_error("midi_learn", message))
        midi_in = MidiInput(router, ports=list(ports) or None)
        try:
            self.midi_ports = tuple(midi_in.start())
        except MidiUnavailable as exc:
            router.close()
            if ports:  # the user named ports: not having them is an error
                raise ValueError(str(exc)) from None
            self._say(f"steerbridge: MIDI off: {exc}")
            return
        self._midi_router, self._midi_input = router, midi_in

    def notify_loop(self, path: Path, kind: str) -> None:
        if self.osc is not None:
            self.osc.notify_loop(path, kind)

    def notify_progress(self, done: int, total: int, label: str) -> None:
        if self.osc is not None:
            self.osc.notify_progress(done, total, label)

    def notify_engine(self, phase: str, detail: str = "") -> None:
        if self.osc is not None:
            self.osc.notify_engine(phase, detail)

    def notify_link(self, name: str, value: object) -> None:
        """Link's tempo, peers or transport changed: ``/steer/state/link/<name>`` to OSC subscribers."""
        if self.osc is not None:
            self.osc.notify_link(name, value)

    def notify_error(self, kind: str, message: str) -> None:
        if self.osc is not None:
            self.osc.notify_error(kind, message)
        else:
            log.warning("%s: %s", kind, message)

    def close(self) -> None:
        if self._midi_input is not None:
            self._midi_input.close()
            self._midi_router.close()
            self._midi_input = self._midi_router = None
        if self.osc is not None:
            self.osc.stop()
            self.osc = None


def _prefer_jack_midi() -> None:
    """No ALSA sequencer but a JACK server: use rtmidi's JACK API (unless MIDO_BACKEND says otherwise)."""
    if os.environ.get("MIDO_BACKEND") or os.path.exists("/dev/snd/seq"):
        return
    from steerbridge.bridge.audio.portaudio import jack_running

    if jack_running():
        import mido

        mido.set_backend("mido.backends.rtmidi/UNIX_JACK")


