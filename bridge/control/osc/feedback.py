"""OSC feedback to subscribers, sent from one thread; and once-per-kind logging.

:class:`OscFeedback` queues messages and a sender thread delivers them to
every subscriber, so the OSC server and MIDI threads never block on a socket.
Messages marked ``coalesce`` (knob state, progress) keep only the newest per
address: a knob storm sends the subscriber the latest value, not a backlog.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import OrderedDict
from typing import Any

from pythonosc.osc_message_builder import build_msg

__all__ = ["OscFeedback", "RateLimitedLog"]

Address = tuple[str, int]


class OscFeedback:
    def __init__(self, *, prefix: str = "/steer", max_pending: int = 4096) -> None:
        self.prefix, self.max_pending = prefix, max_pending
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._subscribers: set[Address] = set()
        self._cond = threading.Condition()
        # key -> (address, args, targets); ordered so messages go out in the order queued
        self._pending: OrderedDict[object, tuple[str, tuple[Any, ...], tuple[Address, ...] | None]] = OrderedDict()
        self._seq = 0
        self._running = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.send_errors = 0
        self.dropped = 0  # oldest messages dropped because max_pending were waiting

    @property
    def subscribers(self) -> frozenset[Address]:
        with self._cond:
            return frozenset(self._subscribers)

    def subscribe(self, target: Address) -> None:
        with self._cond:
            self._subscribers.add(target)

    def unsubscribe(self, target: Address) -> None:
        with self._cond:
            self._subscribers.discard(target)

    def send(self, address: str, *args: Any, coalesce: bool = False, also_to: Address | None = None,
             only_to: Address | None = None, key: object = None) -> None:
        """Queue ``prefix + address`` with ``args`` for the subscribers.

        ``also_to``: a non-subscriber that gets it too (the sender of a bad
        message); ``only_to``: send to that address alone. ``key``: coalesce
        with a waiting message of the same key (only the newest is sent).
        At most ``max_pending`` messages wait: beyond that the oldest go, so a
        flood can never grow this queue without bound.
        """
        full = self.prefix + address
        with self._cond:
            if only_to is not None:
                targets: tuple[Address, ...] | None = (only_to,)
            elif also_to is not None:
                targets = tuple(self._subscribers | {also_to})
            else:
                targets = None  # the subscribers at sending time
            if key is None and coalesce and targets is None:
                key = full
            if key is not None:
                self._pending.pop(key, None)  # re-queued at the end: the newest value, in order
            else:
                self._seq += 1
                key = self._seq
            self._pending[key] = (full, args, targets)
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
                self.dropped += 1
            self._cond.notify()

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._run, name="steerbridge-osc-feedback", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sock.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or not self._running)
                if not self._running and not self._pending:
                    return
                _, (address, args, targets) = self._pending.popitem(last=False)
                if targets is None:
                    targets = tuple(self._subscribers)
            if not targets:
                continue
            dgram = build_msg(address, list(args)).dgram
            for target in targets:
                try:
                    self._sock.sendto(dgram, target)
                    self.sent += 1
                except OSError:
                    self.send_errors += 1  # a vanished subscriber must not stop the others


class RateLimitedLog:
    """Logs the first message of each kind, then at most one summary per ``every_s``.

    A controller stuck sending bad values must not flood the log (or slow the
    server thread with formatting and I/O).
    """

    def __init__(self, logger: logging.Logger, *, every_s: float = 10.0) -> None:
        self._logger, self._every = logger, every_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, message: str, *args: Any) -> bool:
        """Log unless ``kind`` was logged less than ``every_s`` ago; returns whether it logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._every:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return False
            self._last[kind] = now
            skipped = self._suppressed.pop(kind, 0)
        suffix = f" ({skipped} similar messages suppressed)" if skipped else ""
        self._logger.warning(message + suffix, *args, extra={"osc_kind": kind})  # tests count records per kind
        return True
