"""MIDI decoding as pure logic: CC / 14-bit CC / NRPN to knob positions, pickup, learn.

Nothing here opens a port: tests feed ``mido.Message`` objects, and
:mod:`steerbridge.bridge.control.midi.router` feeds the same classes from real ports. Channels are
1..16 in bindings (as printed on hardware) and 0..15 in mido messages.

14-bit values (CC pairs n / n+32, and NRPN data entry CC 6 / 38) arrive as
two messages. Devices differ: some send MSB then LSB every time, some send
only the MSB. So until a control has sent an LSB, its MSB alone is a value
(``msb << 7``); once an LSB has been seen, the MSB only latches and the LSB
emits the combined value. That avoids the glitch of emitting "new MSB, stale
LSB" on devices that send pairs, without going silent on MSB-only devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import mido

from steerbridge.bridge.presets.model import MidiBinding

__all__ = ["KnobEvent", "MidiDecoder", "Pickup", "MidiLearner"]

_NRPN_MSB, _NRPN_LSB, _RPN_MSB, _RPN_LSB, _DATA_MSB, _DATA_LSB = 99, 98, 101, 100, 6, 38


@dataclass(frozen=True)
class KnobEvent:
    name: str
    value: float  # 0..1
    raw: int  # the received value, 0..127 or 0..16383


class MidiDecoder:
    """Turns control-change messages into :class:`KnobEvent` for the given bindings."""

    def __init__(self, bindings: Mapping[str, MidiBinding]) -> None:
        self._cc7: dict[tuple[int, int], str] = {}
        self._cc14: dict[tuple[int, int], str] = {}  # keyed by the MSB controller
        self._nrpn: dict[tuple[int, int], str] = {}
        for name, b in bindings.items():
            ch = b.channel - 1
            if b.mode == "7bit" and b.cc is not None:
                self._cc7[(ch, b.cc)] = name
            elif b.mode == "14bit" and b.cc is not None:
                self._cc14[(ch, b.cc)] = name
            elif b.mode == "nrpn" and b.nrpn is not None:
                self._nrpn[(ch, b.nrpn)] = name
        self._msb: dict[tuple[object, ...], int] = {}
        self._pairs: set[tuple[object, ...]] = set()  # controls that have sent an LSB
        self._param: dict[int, list[int | None]] = {}  # channel -> [msb, lsb] of the selected NRPN
        self._rpn_selected: set[int] = set()  # channels where data entry addresses an RPN

    def feed(self, msg: mido.Message) -> KnobEvent | None:
        if msg.type != "control_change":
            return None
        ch, cc, val = msg.channel, msg.control, msg.value
        if (ch, cc) in self._cc7:
            return KnobEvent(self._cc7[(ch, cc)], val / 127.0, val)
        if (ch, cc) in self._cc14:
            return self._high(("cc", ch, cc), self._cc14[(ch, cc)], val)
        if cc >= 32 and (ch, cc - 32) in self._cc14:
            return self._low(("cc", ch, cc - 32), self._cc14[(ch, cc - 32)], val)
        return self._nrpn_feed(ch, cc, val)

    def _nrpn_feed(self, ch: int, cc: int, val: int) -> KnobEvent | None:
        if cc in (_NRPN_MSB, _NRPN_LSB):
            param = self._param.setdefault(ch, [None, None])
            param[0 if cc == _NRPN_MSB else 1] = val
            self._rpn_selected.discard(ch)
            return None
        if cc in (_RPN_MSB, _RPN_LSB):
            self._rpn_selected.add(ch)  # data entry now means an RPN (e.g. bend range), not ours
            return None
        if cc not in (_DATA_MSB, _DATA_LSB) or ch in self._rpn_selected:
            return None
        msb, lsb = self._param.get(ch, [None, None])
        if msb is None or lsb is None or (msb, lsb) == (127, 127):  # 127/127 is the "null" parameter
            return None
        number = (msb << 7) | lsb
        name = self._nrpn.get((ch, number))
        if name is None:
            return None
        key = ("nrpn", ch, number)
        return self._high(key, name, val) if cc == _DATA_MSB else self._low(key, name, val)

    def _high(self, key: tuple[object, ...], name: str, val: int) -> KnobEvent | None:
        self._msb[key] = val
        if key in self._pairs:
            return None  # this device sends LSBs: wait for it
        raw = val << 7
        return KnobEvent(name, raw / 16383.0, raw)

    def _low(self, key: tuple[object, ...], name: str, val: int) -> KnobEvent:
        self._pairs.add(key)
        raw = (self._msb.get(key, 0) << 7) | val
        return KnobEvent(name, raw / 16383.0, raw)


class Pickup:
    """Soft takeover: a hardware control moves a knob only after it reaches the knob's value.

    Until then (after a preset load, or after OSC/GUI moved the knob) moving
    the hardware does nothing, so the sound never jumps. The control *picks
    up* when it comes within ``tolerance`` of the current value or crosses it
    between two messages.
    """

    def __init__(self, *, tolerance: float = 0.02) -> None:
        self.tolerance = tolerance
        self._engaged: set[str] = set()
        self._last_hw: dict[str, float] = {}
        self._last_set: dict[str, float] = {}

    def accept(self, name: str, hardware: float, current: float) -> bool:
        """Whether ``hardware`` should be applied to a knob now at ``current``."""
        if name in self._engaged and self._last_set.get(name) != current:
            self._engaged.discard(name)  # someone else moved the knob since: pick up again
        previous = self._last_hw.get(name)
        self._last_hw[name] = hardware
        if name not in self._engaged:
            near = abs(hardware - current) <= self.tolerance
            crossed = previous is not None and (previous - current) * (hardware - current) <= 0
            if not (near or crossed):
                return False
            self._engaged.add(name)
        self._last_set[name] = hardware
        return True

    def release(self, name: str | None = None) -> None:
        """Forget engagement (all knobs when ``name`` is None), e.g. after a preset load."""
        for store in (self._engaged, self._last_hw, self._last_set):
            if name is None:
                store.clear()
            else:
                store.discard(name) if isinstance(store, set) else store.pop(name, None)


class MidiLearner:
    """Decides the binding for an armed knob from the messages that follow.

    A CC binds at once as 7-bit. If it was 0..31 and its LSB partner (n+32)
    on the same channel follows within ``window_s``, :meth:`feed` returns an
    upgraded 14-bit binding. CC 99/98 followed by data entry binds the NRPN.
    """

    def __init__(self, *, window_s: float = 0.5) -> None:
        self.window_s = window_s
        self._param: dict[int, list[int | None]] = {}
        self._upgrade: tuple[int, int, float] | None = None  # (channel, cc, deadline)

    def reset(self) -> None:
        self._param.clear()

    def feed(self, msg: mido.Message, *, now: float, armed: bool) -> MidiBinding | None:
        if msg.type != "control_change":
            return None
        ch, cc = msg.channel, msg.control
        if self._upgrade is not None:
            up_ch, up_cc, deadline = self._upgrade
            if now > deadline:
                self._upgrade = None
            elif ch == up_ch and cc == up_cc + 32:
                self._upgrade = None
                return MidiBinding(channel=ch + 1, cc=up_cc, mode="14bit")
        if not armed:
            return None
        if cc in (_NRPN_MSB, _NRPN_LSB):
            self._param.setdefault(ch, [None, None])[0 if cc == _NRPN_MSB else 1] = msg.value
            return None
        if cc in (_RPN_MSB, _RPN_LSB):
            return None
        param = self._param.get(ch)
        if cc in (_DATA_MSB, _DATA_LSB) and param is not None and None not in param:
            self._param.pop(ch)
            return MidiBinding(channel=ch + 1, mode="nrpn", nrpn=(param[0] << 7) | param[1])
        if cc < 32:
            self._upgrade = (ch, cc, now + self.window_s)
        return MidiBinding(channel=ch + 1, cc=cc, mode="7bit")
