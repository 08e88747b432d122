"""RemoteClient: the engine on another machine (``steerbridge engine-server``), behind the same interface.

The third :class:`~steerbridge.bridge.engine_link.client.EngineClient`: jobs are queued here
as with the local clients and sent one at a time over a ZeroMQ DEALER socket
(:mod:`~steerbridge.bridge.engine_link.wire` says what travels). Vector files travel as
bytes, once per session, named by their sha256; loops come back as raw float32 frames.

Losing the server is expected on stage (a cable, a crashed GPU box): the client pings every
``heartbeat_s``; when nothing has been heard for ``dead_after_s`` (5 s: long enough that a
busy machine's scheduling hiccup is no false alarm; audio never waits on it) it reports
``WorkerEvent("disconnected")``, puts the running job back at the front of the queue and
reconnects with back-off (0.25 s doubling to 5 s), then reports ``"reconnected"`` and sends
the queue again. Nothing waits on it meanwhile: the session keeps playing its cached loops.

Threads: ``steerbridge-remote-engine`` owns the socket (zmq sockets are single-threaded);
other threads only append to an outbox and wake it through a pipe. Listeners and ticket
futures run on that thread, as on the local clients' event threads.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

import zmq

from steerbridge.bridge.engine_link.client import EngineClient, EngineJobError, Ticket
from steerbridge.bridge.engine_link.jobs import (Event, Job, JobCancelled, JobDone, JobFailed, ModelInfo, WorkerEvent)
from steerbridge.bridge.engine_link.wire import (MAX_MESSAGE_BYTES, PROTOCOL, WireError, event_from_wire, job_to_wire,
                                                 read_denial, seal, sha256, unseal)

__all__ = ["RemoteClient", "RemoteRefused", "check_address"]

log = logging.getLogger(__name__)
_BACKOFF = (0.25, 0.5, 1.0, 2.0, 4.0, 5.0)


class RemoteRefused(EngineJobError):
    """The server would not talk to us (wrong token, other protocol) or did not answer."""


def check_address(address: str) -> str:
    host, sep, port = address.removeprefix("tcp://").rpartition(":")
    if not address.startswith("tcp://") or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--engine {address!r}: write tcp://HOST:PORT, e.g. tcp://127.0.0.1:5599 or "
                         "tcp://studio-gpu.local:5599")
    return address


class RemoteClient(EngineClient):
    def __init__(self, address: str, *, key: bytes, heartbeat_s: float = 0.5, dead_after_s: float = 5.0) -> None:
        super().__init__()
        self.address, self._key = check_address(address), key
        self._heartbeat_s, self._dead_after_s = heartbeat_s, dead_after_s
        self._ctx = zmq.Context()
        self._sock: Any = None
        self._session: str | None = None
        self._seq = 0
        self._sent_vectors: set[str] = set()
        self._vector_cache: dict[tuple[str, int, int], tuple[str, bytes]] = {}
        self._outbox: collections.deque[tuple[str, Any]] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "disconnected"  # connected | disconnected
        self.bytes_received = 0
        self.bytes_sent = 0

    # ------------------------------------------------------------ lifecycle
    def start(self, *, timeout: float = 10.0) -> ModelInfo:
        """Connect and authenticate (blocking); RemoteRefused says why not."""
        self._connect(timeout=timeout)
        self._thread = threading.Thread(target=self._loop, name="steerbridge-remote-engine", daemon=True)
        self._thread.start()
        assert self.info is not None
        return self.info

    def close(self) -> None:
        if self._ctx.closed:
            return  # closed already (idempotent, like the other clients)
        self._stopping.set()
        self.cancel_all()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._sock is not None:
            try:
                self._send({"type": "bye"})
            except zmq.ZMQError:
                pass
            self._sock.close(0)
            self._sock = None
        self._ctx.term()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def run(self, job_id: int, job: Job, *, emit: Callable[[Event], None], cancelled: Callable[[], bool]) -> None:
        """``JobRunner.run``'s contract, remotely: ``emit`` every event of one job (for ``render``)."""
        del job_id, cancelled  # the client numbers its own jobs; the CLI never cancels
        ticket_box: list[Ticket] = []
        gate = threading.Event()

        def forward(event: Event) -> None:
            gate.wait()
            if getattr(event, "job_id", None) == ticket_box[0].id:
                emit(event)

        remove = self.add_listener(forward)
        try:
            ticket_box.append(self.submit(job))
            gate.set()
            try:
                ticket_box[0].future.result()
            except EngineJobError:
                pass  # already emitted as JobFailed / JobCancelled
        finally:
            remove()

    # ------------------------------------------------------------ EngineClient hooks
    def _alive(self) -> bool:
        return self.state == "connected" and not self._stopping.is_set()

    def _send_job(self, ticket: Ticket) -> None:
        self._outbox.append(("job", ticket))
        self._wake()

    def _send_cancel(self, job_id: int) -> None:
        self._outbox.append(("cancel", job_id))
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (already woken) or closed (shutting down)

    # ------------------------------------------------------------ connection
    def _connect(self, *, timeout: float) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        sock.connect(self.address)
        sock.send_multipart(seal(self._key, {"type": "hello", "protocol": PROTOCOL}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000)):
                sock.close(0)
                raise RemoteRefused(f"no engine server answered at {self.address} within {timeout:.0f} s: is "
                                    "`steerbridge engine-server` running there, and is the port reachable?",
                                    "Unreachable")
            frames = sock.recv_multipart()
            reason = read_denial(frames)
            if reason is not None:
                sock.close(0)
                raise RemoteRefused(f"{self.address}: {reason}", "AuthError")
            try:
                header, _ = unseal(self._key, frames)
            except WireError:
                continue  # a stray message from before; the welcome is what we wait for
            if header["type"] == "welcome":
                break
            if header["type"] == "error":
                sock.close(0)
                raise RemoteRefused(f"{self.address}: {header.get('error')}", "ProtocolError")
        info = _info(header.get("info"))
        if self.info is not None and info.fingerprint != self.info.fingerprint:
            sock.close(0)
            raise RemoteRefused(f"the engine server at {self.address} came back with another model "
                                f"({info.source}, {info.fingerprint}; was {self.info.fingerprint}); restart the "
                                "session for it", "ModelChanged")
        self._sock, self._session, self._seq = sock, header.get("session"), 0
        self._sent_vectors.clear()  # a new session (maybe a new server process): send files again
        self.info = info
        self.state = "connected"
        self._last_heard = self._last_ping = time.monotonic()

    def _lose(self, detail: str) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
        self.state = "disconnected"
        # Unsent jobs and cancels belong to the lost session: the running job is re-queued
        # below and everything queued is sent again after the reconnect, each exactly once.
        self._outbox.clear()
        ticket = self._requeue_running()
        if ticket is not None:
            detail += f"; job {ticket.id} goes back to the queue"
        log.error("remote engine: %s", detail)
        self._on_event(WorkerEvent("disconnected", detail))

    def _loop(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            if self._sock is None:
                delay = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
                if self._stopping.wait(delay):
                    return
                try:
                    self._connect(timeout=min(2.0, 1.0 + delay))
                except RemoteRefused as exc:
                    attempt += 1
                    if exc.kind in ("AuthError", "ModelChanged", "ProtocolError"):
                        self._on_event(WorkerEvent("failed", str(exc)))
                        self.cancel_all()
                        return
                    continue
                attempt = 0
                self.restarts += 1
                self._on_event(WorkerEvent("reconnected", f"engine server {self.address} is back", self.info))
                self._pump()
            self._step()

    def _step(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        ready = dict(poller.poll(int(self._heartbeat_s * 1000)))
        if self._wake_r in ready:
            os.read(self._wake_r, 4096)
        while self._outbox and self._sock is not None:
            kind, item = self._outbox.popleft()
            if kind == "job":
                self._transmit(item)
            else:
                self._send({"type": "cancel", "job": item})
        while self._sock is not None and self._sock.poll(0):
            self._receive(self._sock.recv_multipart())
        now = time.monotonic()
        if self._sock is not None and now - self._last_heard > self._dead_after_s:
            self._lose(f"lost the engine server {self.address} (nothing heard for {self._dead_after_s:.1f} s); "
                       "playing from cached loops and reconnecting")
        elif self._sock is not None and now - self._last_ping >= self._heartbeat_s:
            self._send({"type": "ping"})
            self._last_ping = now

    def _send(self, header: dict[str, Any], payloads: list[bytes] | tuple[()] = ()) -> None:
        self._seq += 1
        frames = seal(self._key, {**header, "session": self._session, "seq": self._seq}, payloads)
        self.bytes_sent += sum(len(f) for f in frames)
        self._sock.send_multipart(frames, copy=False)

    def _transmit(self, ticket: Ticket) -> None:
        attach: dict[str, bytes] = {}

        def vector(path: str) -> str:
            name, data = self._read_vector(path)
            if name not in self._sent_vectors:
                attach[name] = data
            return name

        try:
            body = job_to_wire(ticket.job, vector)
        except (WireError, OSError) as exc:
            self._on_event(JobFailed(ticket.id, str(exc), "BadJob"))
            return
        self._send({"type": "job", "id": ticket.id, "job": body, "vectors": list(attach)}, list(attach.values()))
        self._sent_vectors.update(attach)

    def _read_vector(self, path: str) -> tuple[str, bytes]:
        st = os.stat(path)
        ident = (path, st.st_mtime_ns, st.st_size)  # a re-extracted file is read again
        if ident not in self._vector_cache:
            data = Path(path).read_bytes()
            self._vector_cache[ident] = (sha256(data), data)
        return self._vector_cache[ident]

    def _receive(self, frames: list[bytes]) -> None:
        self.bytes_received += sum(len(f) for f in frames)
        try:
            header, payloads = unseal(self._key, frames)
        except WireError:
            log.warning("remote engine: dropped a message that did not verify (%d frames)", len(frames))
            return
        if header.get("session") != self._session:
            return  # an answer meant for an earlier session
        self._last_heard = time.monotonic()
        kind = header["type"]
        if kind in ("pong", "welcome"):
            return
        if kind == "error":
            log.error("remote engine %s: %s", self.address, header.get("error"))
            return
        try:
            event = event_from_wire(header, payloads)
        except WireError as exc:
            log.error("remote engine: bad %s event: %s", kind, exc)
            return
        if isinstance(event, (JobDone, JobFailed, JobCancelled)) and event.job_id not in self._tickets:
            return  # a job we already re-queued or gave up on
        self._on_event(event)


def _info(obj: Any) -> ModelInfo:
    try:
        return ModelInfo(source=str(obj["source"]), fingerprint=str(obj["fingerprint"]),
                         sample_rate=int(obj["sample_rate"]), channels=int(obj["channels"]),
                         num_layers=int(obj["num_layers"]))
    except (TypeError, KeyError, ValueError):
        raise RemoteRefused(f"the engine server sent no usable model info ({obj!r:.80})", "ProtocolError") from None
