"""OSC control (python-osc): the /steer addresses (docs/osc.md), and feedback.

Incoming (default 127.0.0.1:9000, prefix ``/steer``)::

    /steer/knob/<name> f     knob position 0..1 (clamped); or the knob's own `osc` address
    /steer/alpha/<name> f    knob by alpha (clamped to its range)
    /steer/prompt s          /steer/seed i          /steer/seconds f
    /steer/bars i            loop length in bars while Ableton Link sets the tempo
    /steer/preset s          a preset file name inside the presets folder
    /steer/learn s           arm MIDI learn for a knob ("" disarms)
    /steer/play              /steer/stop
    /steer/subscribe [i]     send feedback to the sender's host at port i (default: its port)
    /steer/unsubscribe [i]

OSC wildcards work through python-osc's dispatcher matching:
``/steer/knob/* 0.5`` sets every knob. Feedback to subscribers::

    /steer/state/knob/<name> f value f alpha   (coalesced: only the newest is sent)
    /steer/state/prompt s, /seed i, /seconds f, /bars i, /playing i, /learn s, /preset s
    /steer/state/link/tempo f, /peers i, /playing i   (with Link on, on every change)
    /steer/state/engine s phase s detail       connected | disconnected (engine process or server lost)
    /steer/progress i done i total s label     (coalesced)
    /steer/loop s wav_path s kind              a rendered loop is ready
                                               loading -> ready (or error) while a preset's model loads
    /steer/error s kind s message              also sent to the sender of a bad message

Threads: the server thread runs the handlers; they are thin (parse, clamp, set
state) and never block. A feedback thread does all sending, so a slow or
vanished subscriber never stalls message handling; ``/steer/preset`` is read
and parsed on the ``steerbridge-preset-load`` thread
(:mod:`steerbridge.bridge.control.osc.presets`), never on the server thread.

Exposure: the server listens on loopback unless ``allow_remote=True`` *and*
``allowed_senders`` (addresses or networks) are given; packets from other
senders are dropped unanswered (:mod:`steerbridge.bridge.control.osc.udp`). Every datagram passes
:func:`steerbridge.bridge.control.osc.guard.check_packet` before python-osc parses it, and every
refusal is logged once per kind (then one summary per 10 s per kind).
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

from pythonosc.dispatcher import Dispatcher

from steerbridge.bridge.control.osc.feedback import OscFeedback, RateLimitedLog
from steerbridge.bridge.control.osc.guard import BadPacket, PacketLimits, check_packet
from steerbridge.bridge.control.osc.presets import PresetRequests
from steerbridge.bridge.control.osc.udp import (RCVBUF_BYTES, Address, GatedServer, SenderAllowlist, check_exposure,
                                                is_loopback_host)
from steerbridge.bridge.control.state import Change, ControlState
from steerbridge.bridge.presets.model import Preset

__all__ = ["OscServer", "OscFeedback", "DEFAULT_PORT", "RCVBUF_BYTES", "is_loopback_host"]

log = logging.getLogger(__name__)
DEFAULT_PORT = 9000


class OscServer:
    """Serves the OSC addresses above for one :class:`ControlState`.

    ``port=0`` picks a free port (see :attr:`address`). ``presets_dir``
    confines ``/steer/preset``; ``on_preset`` is called with the loaded preset
    (default: ``state.load_preset``) so the session can also reload the model,
    on the ``steerbridge-preset-load`` thread (:attr:`presets`).

    ``host`` must be a loopback address unless ``allow_remote``; then
    ``allowed_senders`` (IP addresses or networks such as ``192.168.1.0/24``)
    must name who may send. Without an allowlist only loopback senders are
    served. :attr:`refused` counts dropped datagrams by kind.
    """

    def __init__(self, state: ControlState, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 prefix: str = "/steer", presets_dir: str | Path | None = None,
                 on_preset: Callable[[Preset], None] | None = None, rcvbuf_bytes: int = RCVBUF_BYTES,
                 allow_remote: bool = False, allowed_senders: Iterable[str] = (),
                 limits: PacketLimits = PacketLimits(), log_every_s: float = 10.0) -> None:
        self._allowed = SenderAllowlist(allowed_senders)
        check_exposure(host, allow_remote, self._allowed)
        self.state, self.prefix, self.limits = state, prefix.rstrip("/"), limits
        self.presets_dir = Path(presets_dir).resolve() if presets_dir is not None else None
        self.presets = PresetRequests(self.presets_dir,
                                      on_preset=on_preset or (lambda preset: state.load_preset(preset, source="osc")),
                                      report=lambda kind, msg, to: self.notify_error(kind, msg, to=to))
        self.feedback = OscFeedback(prefix=self.prefix)
        self._log = RateLimitedLog(log, every_s=log_every_s)
        self.refused: Counter[str] = Counter()  # datagrams dropped before dispatch, by kind
        self.accepted = 0  # datagrams that passed the gate (NB: only the server thread writes it)
        self.engine_state: tuple[str, str] = ("ready", "")  # sent to new subscribers too
        try:
            self._server = GatedServer((host, port), self._build_dispatcher(), rcvbuf=rcvbuf_bytes,
                                   gate=self._gate, on_error=self._handler_failed)
        except BaseException:
            self.presets.close()  # e.g. the port is taken: no thread left behind
            raise
        self._thread: threading.Thread | None = None
        self._remove_listener = state.add_listener(self._on_change)
        # More state for a new subscriber, from outside the ControlState: ("/state/link/tempo", (97.0,)), ...
        self.extra_state: list[Callable[[], list[tuple[str, tuple[Any, ...]]]]] = []

    @property
    def address(self) -> Address:
        return self._server.server_address[:2]

    @property
    def dispatcher(self) -> Dispatcher:
        """The current dispatcher (tests feed packets to it without a socket)."""
        return self._server.current

    def start(self) -> OscServer:
        self.feedback.start()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="steerbridge-osc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._remove_listener()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self.presets.close()
        self.feedback.stop()

    # -- feedback the session sends ----------------------------------------
    def notify_progress(self, done: int, total: int, label: str = "") -> None:
        self.feedback.send("/progress", int(done), int(total), label, coalesce=True)

    def notify_loop(self, wav_path: str | Path, kind: str = "exact") -> None:
        self.feedback.send("/loop", str(wav_path), kind)

    def notify_engine(self, phase: str, detail: str = "") -> None:
        self.engine_state = (phase, detail)  # NB: one reference store
        self.feedback.send("/state/engine", phase, detail)

    def notify_link(self, name: str, value: object) -> None:
        value = int(value) if isinstance(value, bool) else value
        self.feedback.send(f"/state/link/{name}", value, coalesce=True)

    def notify_error(self, kind: str, message: str, *, to: Address | None = None) -> None:
        self._log.warning(kind, "OSC %s: %s", kind, message)
        # Keyed by kind and sender: a controller stuck sending bad data gets the
        # newest error, not a backlog that grows as fast as it sends.
        self.feedback.send("/error", kind, message, also_to=to, key=("/error", kind, to))

    # -- the gate before python-osc ----------------------------------------
    def _gate(self, data: bytes, sender: Address) -> bool:
        try:
            if not self._allowed.allows(sender[0]):
                self.refused["sender_refused"] += 1
                self._log.warning("sender_refused", "OSC packet from %s dropped: not an allowed sender "
                                  "(add it with --osc-allow)", sender[0])
                return False  # no reply: strangers learn nothing, and cannot use us to reflect traffic
            check_packet(data, self.limits)
            self.accepted += 1
            return True
        except BadPacket as exc:
            self.refused[exc.kind] += 1
            self.notify_error(exc.kind, f"malformed OSC packet from {sender[0]}:{sender[1]}: {exc}", to=sender)
        except Exception as exc:  # noqa: BLE001 - see _Server.verify_request
            self.refused["internal_error"] += 1
            self._log.warning("internal_error", "OSC packet check failed: %s: %s", type(exc).__name__, exc)
        return False

    def _handler_failed(self, sender: Address) -> None:
        exc = sys.exc_info()[1]
        self.refused["internal_error"] += 1
        self._log.warning("internal_error", "OSC message from %s failed in its handler: %s: %s",
                          sender, type(exc).__name__, exc)

    # -- dispatcher ------------------------------------------------------
    def _build_dispatcher(self) -> Dispatcher:
        # strict_timing=False: the default sleeps until a bundle's timetag, blocking the server.
        d = Dispatcher(strict_timing=False)
        p = self.prefix
        for knob in self.state.snapshot().preset.knobs:
            d.map(knob.osc_address(p), self._knob, knob.name, needs_reply_address=True)
            d.map(f"{p}/alpha/{knob.name}", self._alpha, knob.name, needs_reply_address=True)
        for name in ("prompt", "seed", "seconds", "bars", "bpm", "preset", "learn", "play", "stop", "subscribe",
                     "unsubscribe"):
            d.map(f"{p}/{name}", getattr(self, f"_{name}"), needs_reply_address=True)
        d.set_default_handler(self._unknown, needs_reply_address=True)
        return d

    def _args(self, sender: Address, address: str, args: tuple[Any, ...], types: str) -> tuple[Any, ...] | None:
        """Check ``args`` against ``types`` (f: number, i: integer, s: string); None after an error reply."""
        ok = len(args) == len(types)
        out: list[Any] = []
        for value, t in zip(args, types):
            if t == "f" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out.append(float(value))
            elif t == "i" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and math.isfinite(value) and float(value).is_integer():
                out.append(int(value))  # Max sends floats from number boxes: 3.0 is fine, 3.5 is not
            elif t == "s" and isinstance(value, str):
                out.append(value)
            else:
                ok = False
        if not ok:
            names = {"f": "a number", "i": "an integer", "s": "a string"}
            want = ", ".join(names[t] for t in types) or "no arguments"
            self.notify_error("bad_args", f"{address} expects {want}; got {list(args)!r}", to=sender)
            return None
        return tuple(out)

    def _knob(self, sender: Address, address: str, fixed: list[str], *args: Any) -> None:
        if (parsed := self._args(sender, address, args, "f")) is not None:
            self._set(sender, lambda: self.state.set_value(fixed[0], parsed[0], source="osc"))

    def _alpha(self, sender: Address, address: str, fixed: list[str], *args: Any) -> None:
        if (parsed := self._args(sender, address, args, "f")) is not None:
            self._set(sender, lambda: self.state.set_alpha(fixed[0], parsed[0], source="osc"))

    def _prompt(self, sender: Address, address: str, *args: Any) -> None:
        if (parsed := self._args(sender, address, args, "s")) is not None:
            self._set(sender, lambda: self.state.set_prompt(parsed[0], source="osc"))

    def _seed(self, sender: Address, address: str, *args: Any) -> None:
        if (parsed := self._args(sender, address, args, "i")) is not None:
            self._set(sender, lambda: self.state.set_seed(parsed[0], source="osc"))

    def _seconds(self, sender: Address, address: str, *args: Any) -> None:
        if (parsed := self._args(sender, address, args, "f")) is not None:
            self._set(sender, lambda: self.state.set_seconds(parsed[0], source="osc"))

    def _bars(self, sender: Address, address: str, *args: Any) -> None:
        if (parsed := self._args(sender, address, args, "i")) is not None:
            self._set(sender, lambda: self.state.set_bars(parsed[0], source="osc"))

    def _bpm(self, sender: Address, address: str, *args: Any) -> None:
        if (parsed := self._args(sender, address, args, "f")) is not None:
            self._set(sender, lambda: self.state.set_bpm(parsed[0], source="osc"))

    def _learn(self, sender: Address, address: str, *args: Any) -> None:
        if (parsed := self._args(sender, address, args, "s")) is not None:
            self._set(sender, lambda: self.state.arm_learn(parsed[0] or None, source="osc"))

    def _play(self, sender: Address, address: str, *args: Any) -> None:
        if self._args(sender, address, args, "") is not None:
            self.state.set_playing(True, source="osc")

    def _stop(self, sender: Address, address: str, *args: Any) -> None:
        if self._args(sender, address, args, "") is not None:
            self.state.set_playing(False, source="osc")

    def _preset(self, sender: Address, address: str, *args: Any) -> None:
        if (parsed := self._args(sender, address, args, "s")) is not None:
            self.presets.request(parsed[0], sender, address)  # read and parsed on steerbridge-preset-load

    def _subscribe(self, sender: Address, address: str, *args: Any) -> None:
        port = self._port(sender, address, args)
        if port is not None:
            self.feedback.subscribe((sender[0], port))
            self._send_full_state((sender[0], port))

    def _unsubscribe(self, sender: Address, address: str, *args: Any) -> None:
        port = self._port(sender, address, args)
        if port is not None:
            self.feedback.unsubscribe((sender[0], port))

    def _unknown(self, sender: Address, address: str, *args: Any) -> None:
        self.notify_error("unknown_address", f"no such address {address!r}; knobs: "
                          f"{', '.join(self.state.snapshot().preset.knob_names()) or 'none'}", to=sender)

    # -- helpers ---------------------------------------------------------
    def _port(self, sender: Address, address: str, args: tuple[Any, ...]) -> int | None:
        parsed = self._args(sender, address, args, "i" if args else "")
        if parsed is None:
            return None
        port = parsed[0] if parsed else sender[1]
        if not 0 < port < 65536:
            self.notify_error("bad_args", f"{address}: port {port} is not 1..65535", to=sender)
            return None
        return port

    def _set(self, sender: Address, action: Callable[[], object]) -> None:
        try:
            action()
        except (ValueError, KeyError) as exc:  # the state's messages say what to send instead
            self.notify_error("bad_value", str(exc).strip("'\""), to=sender)

    def _send_full_state(self, to: Address) -> None:
        snap = self.state.snapshot()
        for knob in snap.knobs.values():
            self.feedback.send(f"/state/knob/{knob.name}", knob.value, knob.alpha, only_to=to)
        self.feedback.send("/state/prompt", snap.prompt, only_to=to)
        self.feedback.send("/state/seed", snap.seed, only_to=to)
        self.feedback.send("/state/seconds", snap.seconds, only_to=to)
        self.feedback.send("/state/bars", snap.bars, only_to=to)
        self.feedback.send("/state/playing", int(snap.playing), only_to=to)
        self.feedback.send("/state/engine", *self.engine_state, only_to=to)
        for extra in self.extra_state:
            for address, args in extra():
                self.feedback.send(address, *args, only_to=to)

    def _on_change(self, change: Change) -> None:
        # Runs on whichever thread changed the state: only queue messages here.
        if change.kind == "knob":
            self.feedback.send(f"/state/knob/{change.name}", change.value, change.alpha, coalesce=True)
        elif change.kind == "preset":
            self._server.current = self._build_dispatcher()  # knob addresses changed
            self.feedback.send("/state/preset", str(getattr(change.value, "path", "") or ""))
        elif change.kind in ("prompt", "seed", "seconds", "bars", "bpm", "playing", "learn"):
            value = change.value
            value = int(value) if isinstance(value, bool) else ("" if value is None else value)
            self.feedback.send(f"/state/{change.kind}", value)
