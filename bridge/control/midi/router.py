"""MIDI control (mido + python-rtmidi): ports in, knob values out.

:class:`MidiRouter` applies decoded messages to a :class:`ControlState`:
preset bindings (7-bit, 14-bit pairs, NRPN; see :mod:`steerbridge.bridge.control.midi.decode`),
soft takeover, and MIDI learn (arm a knob via ``state.arm_learn`` from OSC,
the CLI or the panel; the next control binds and is saved into the preset
file atomically, comments kept). :class:`MidiInput` opens real ports: the
chosen or all input ports, plus a virtual input named ``steerbridge`` that a
DAW or controller script can connect to.

Threads: rtmidi calls back on one thread per port; the router serialises
them with a lock. Nothing here runs on the audio thread, and nothing here
touches files: a learned binding is live at once and written into the preset
file by the ``steerbridge-midi-save`` thread
(:class:`~steerbridge.bridge.control.midi.learnsave.BindingSaver`).

Backends: on Linux without an ALSA sequencer (CI, containers), run a JACK
server and set ``MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Callable, Sequence

import mido

from steerbridge.bridge.control.midi.decode import KnobEvent, MidiDecoder, MidiLearner, Pickup
from steerbridge.bridge.control.midi.learnsave import BindingSaver
from steerbridge.bridge.control.state import Change, ControlState
from steerbridge.bridge.presets.model import MidiBinding, Preset

__all__ = ["MidiRouter", "MidiInput", "MidiUnavailable", "VIRTUAL_PORT", "KnobEvent"]

log = logging.getLogger(__name__)
VIRTUAL_PORT = "steerbridge"


class MidiUnavailable(RuntimeError):
    """No MIDI system could be opened (the message says how to get one)."""


class MidiRouter:
    """Feeds MIDI messages into the state. ``handle`` is the entry point (any thread).

    ``persist``: save learned bindings into the preset file (when the preset
    has one), on the saver's thread; ``on_error(message)`` hears when that
    fails. ``pickup``: soft takeover on (default) or off.
    """

    def __init__(self, state: ControlState, *, pickup: bool = True, persist: bool = True,
                 clock: Callable[[], float] = time.monotonic, on_error: Callable[[str], None] | None = None) -> None:
        self.state, self._clock = state, clock
        self.saver = BindingSaver(on_error=on_error) if persist else None
        self._lock = threading.Lock()
        self._pickup = Pickup() if pickup else None
        self._learner = MidiLearner()
        self._learning: str | None = None  # the knob the last learn bound (for a 14-bit upgrade)
        self._armed: str | None = state.snapshot().learn_armed
        self._decoder = self._make_decoder(state.snapshot().preset)
        self.received = 0
        self._remove_listener = state.add_listener(self._on_change)

    def close(self) -> None:
        self._remove_listener()
        if self.saver is not None:
            self.saver.close()  # writes what is still queued

    def wait_saved(self, timeout: float | None = None) -> bool:
        """Wait until learned bindings are written into the preset file; False on timeout."""
        return self.saver is None or self.saver.wait_idle(timeout)

    def handle(self, msg: mido.Message) -> KnobEvent | None:
        """Apply one message; returns the knob event it produced (if any), applied or not."""
        with self._lock:
            self.received += 1
            binding = self._learner.feed(msg, now=self._clock(), armed=self._armed is not None)
            if binding is not None:
                self._bind(self._armed or self._learning, binding)
                return None
            if self._armed is not None:
                return None  # while learning, controls do not move knobs
            event = self._decoder.feed(msg)
            if event is None:
                return None
            current = self.state.value(event.name)
            if self._pickup is None or self._pickup.accept(event.name, event.value, current):
                self.state.set_value(event.name, event.value, source="midi")
            return event

    def _bind(self, name: str | None, binding: MidiBinding) -> None:
        if name is None:
            return
        preset = self.state.snapshot().preset
        for other in preset.knobs:  # one control drives one knob: take it from its old owner
            if other.name != name and other.midi is not None and _same_control(other.midi, binding):
                preset = preset.with_knob(replace(other, midi=None))
        preset = preset.with_knob(replace(preset.knob(name), midi=binding))
        self._learning = name
        log.info("MIDI learn: knob %r <- %s", name, binding)
        self.state.replace_preset(preset, source="midi")
        if self.saver is not None:
            self.saver.save(preset)  # the file is written on the saver's thread, not this one
        if self._armed is not None:
            self.state.arm_learn(None, source="midi")

    def _on_change(self, change: Change) -> None:
        # NB: called on the changing thread, maybe inside handle() (same thread,
        # lock held): only plain attribute stores here.
        if change.kind == "learn":
            self._armed = change.name
            if change.name is not None:
                self._learner.reset()
        elif change.kind == "preset":
            self._decoder = self._make_decoder(change.value)  # type: ignore[arg-type]
            if change.source != "midi" and self._pickup is not None:
                self._pickup.release()

    @staticmethod
    def _make_decoder(preset: Preset) -> MidiDecoder:
        return MidiDecoder({k.name: k.midi for k in preset.knobs if k.midi is not None})


def _same_control(a: MidiBinding, b: MidiBinding) -> bool:
    if a.channel != b.channel:
        return False
    if (a.mode == "nrpn") != (b.mode == "nrpn"):
        return False
    return a.nrpn == b.nrpn if a.mode == "nrpn" else a.cc == b.cc


class MidiInput:
    """Real MIDI ports feeding a :class:`MidiRouter`.

    ``ports``: names (or unique substrings) of input ports; None opens every
    input port there is. ``virtual``: also open the virtual input ``steerbridge``.
    """

    def __init__(self, router: MidiRouter, *, ports: Sequence[str] | None = None, virtual: bool = True,
                 virtual_name: str = VIRTUAL_PORT) -> None:
        self.router, self._wanted, self._virtual, self.virtual_name = router, ports, virtual, virtual_name
        self._open: list[mido.ports.BaseInput] = []

    @staticmethod
    def available_ports() -> list[str]:
        try:
            return list(mido.get_input_names())
        except Exception as exc:  # rtmidi raises its own error types per API
            raise MidiUnavailable(_unavailable(exc)) from exc

    def start(self) -> list[str]:
        """Open the ports; returns their names."""
        names = self.available_ports()
        chosen = [n for n in names if not n.startswith(self.virtual_name)]  # never listen to ourselves
        if self._wanted is not None:
            chosen = [self._match(w, names) for w in self._wanted]
        try:
            if self._virtual:
                self._open.append(mido.open_input(self.virtual_name, virtual=True, client_name=self.virtual_name,
                                                  callback=self._callback))
            for name in chosen:  # NB: no client_name here: mido makes any port with one virtual
                self._open.append(mido.open_input(name, callback=self._callback))
        except Exception as exc:
            self.close()
            raise MidiUnavailable(_unavailable(exc)) from exc
        return [p.name for p in self._open]

    def close(self) -> None:
        for port in self._open:
            try:
                port.close()
            except Exception:
                log.exception("closing MIDI port %s", port.name)
        self._open.clear()

    def _callback(self, msg: mido.Message) -> None:
        try:
            self.router.handle(msg)
        except Exception:  # an exception would kill rtmidi's callback thread
            log.exception("MIDI message %s could not be handled", msg)

    @staticmethod
    def _match(wanted: str, names: list[str]) -> str:
        if wanted in names:
            return wanted
        hits = [n for n in names if wanted.lower() in n.lower()]
        if len(hits) != 1:
            found = "several" if hits else "no"
            raise MidiUnavailable(f"{found} MIDI input ports match {wanted!r}; available: {', '.join(names) or 'none'}")
        return hits[0]


def _unavailable(exc: Exception) -> str:
    return (f"MIDI is not available ({type(exc).__name__}: {exc}). Without an ALSA sequencer "
            "(/dev/snd/seq), start JACK (`jackd --no-realtime -d dummy -r 48000 -p 256 &`) and set "
            "MIDO_BACKEND=mido.backends.rtmidi/UNIX_JACK; or run without --midi")
