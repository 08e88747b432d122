"""EngineServer: one resident engine served over ZeroMQ to remote clients (``steerbridge engine-server``).

Sockets and threads: a ROUTER socket, owned by the server's main loop (``serve``), takes
every client message, checks it (:mod:`~steerbridge.bridge.engine_link.wire`) and answers
hellos and pings at once, so a client can tell "busy rendering" from "gone" even mid-render.
Jobs go to a queue that the ``steerbridge-render`` thread works through with the same
:class:`~steerbridge.bridge.engine_link.worker.JobRunner` the local worker uses, so a loop
rendered here is bit for bit the one a local render gives. Its events are sealed on the
render thread and handed to the main loop over an ``inproc`` socket (zmq sockets are not
thread-safe; each is used by one thread only).

Anything a client sends is untrusted: a message that fails its HMAC is counted and answered
with one unsigned denial (at most once a second per peer); a signed but malformed one gets a
signed ``error``; nothing a client sends can stop the loop (``refused`` counts them by reason).

Vector files arrive as bytes named by their sha256 (checked), and are kept in a private
folder for the server's lifetime, so a client sends each file once per session.
"""

from __future__ import annotations

import logging
import queue
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from steerbridge.bridge.engine_link.jobs import Event, JobFailed, ModelInfo
from steerbridge.bridge.engine_link.wire import (MAX_MESSAGE_BYTES, PROTOCOL, AuthError, WireError, denial,
                                                 event_to_wire, job_from_wire, seal, sha256, unseal)

__all__ = ["EngineServer", "is_loopback"]

log = logging.getLogger(__name__)
_MAX_SESSIONS = 64
_MAX_QUEUED = 256
_MAX_VECTOR_FILES = 4096


def is_loopback(bind: str) -> bool:
    """Whether a ``tcp://HOST:PORT`` endpoint listens on loopback only."""
    import ipaddress

    host = bind.removeprefix("tcp://").rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or '*' (every interface)


@dataclass
class _Session:
    nonce: str
    seq: int = 0


class EngineServer:
    """Serve ``runner``'s model at ``bind`` to clients holding ``key``.

    ``runner``: a :class:`JobRunner` (anything with ``info`` and ``run(job_id, job, emit=, cancelled=)``).
    ``allow_remote``: needed to listen beyond loopback (the CLI also insists on a token file then).
    """

    def __init__(self, runner: Any, *, bind: str, key: bytes, allow_remote: bool = False) -> None:
        if not bind.startswith("tcp://"):
            raise ValueError(f"--bind {bind!r}: use tcp://HOST:PORT, e.g. tcp://127.0.0.1:5599")
        if not is_loopback(bind) and not allow_remote:
            raise ValueError(f"--bind {bind} listens beyond this machine; add --allow-remote and a --token-file "
                             "that you copy to the client (see the README, 'Two machines')")
        self.runner, self.info = runner, runner.info
        self._key = key
        self._ctx = zmq.Context()
        self._router = self._ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a reply to a peer that left is dropped, not an error
        self._router.bind(bind)
        self.address = self._router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self._inproc = f"inproc://steerbridge-events-{secrets.token_hex(4)}"
        self._events_in = self._ctx.socket(zmq.PULL)
        self._events_in.bind(self._inproc)
        self._sessions: OrderedDict[bytes, _Session] = OrderedDict()
        self._jobs: queue.Queue[tuple[bytes, str, int, Any] | None] = queue.Queue()
        self._cancelled: set[tuple[bytes, int]] = set()
        self._denied_at: dict[bytes, float] = {}
        self._store = Path(tempfile.mkdtemp(prefix="steerbridge-vectors-"))
        self._stop = threading.Event()
        self.refused: Counter[str] = Counter()
        self.received = 0
        self.jobs_run = 0
        self._render_thread = threading.Thread(target=self._render_loop, name="steerbridge-render", daemon=True)

    # ------------------------------------------------------------ lifecycle
    def serve(self) -> None:
        """Run until :meth:`stop` (blocking; the CLI's main thread)."""
        self._render_thread.start()
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._events_in, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                for sock, _ in poller.poll(100):
                    if sock is self._events_in:
                        self._router.send_multipart(self._events_in.recv_multipart(copy=False), copy=False)
                    else:
                        frames = self._router.recv_multipart()
                        self._handle(frames[0], frames[1:])
        finally:
            self._jobs.put(None)
            self._render_thread.join(timeout=30)
            self._router.close(0)
            self._events_in.close(0)
            self._ctx.term()
            shutil.rmtree(self._store, ignore_errors=True)

    def start(self) -> EngineServer:
        """Serve on a background thread (tests, benchmarks)."""
        self._serve_thread = threading.Thread(target=self.serve, name="steerbridge-engine-server", daemon=True)
        self._serve_thread.start()
        return self

    def stop_soon(self) -> None:
        """Ask :meth:`serve` to return (safe from a signal handler on its own thread)."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        thread = getattr(self, "_serve_thread", None)
        if thread is not None:
            thread.join(timeout=30)

    # ------------------------------------------------------------ messages
    def _handle(self, peer: bytes, frames: list[bytes]) -> None:
        self.received += 1
        try:
            header, payloads = unseal(self._key, frames)
        except AuthError as exc:
            self.refused["auth"] += 1
            self._deny(peer, "the engine server refused this client: wrong token (HMAC check failed). Use the "
                             "token file the server was started with (`--engine-token FILE`)", exc)
            return
        except WireError as exc:
            self.refused["malformed"] += 1
            self._deny(peer, f"malformed message: {exc}", exc)
            return
        try:
            self._dispatch(peer, header, payloads)
        except WireError as exc:
            self.refused["malformed"] += 1
            self._send(peer, {"type": "error", "error": f"malformed {header.get('type')!r:.40} message: {exc}"})
        except Exception as exc:  # a bug must not stop the server for every other client
            self.refused["internal"] += 1
            log.exception("engine server: handling a %r message failed", header.get("type"))
            self._send(peer, {"type": "error", "error": f"internal error: {type(exc).__name__}: {exc}"})

    def _dispatch(self, peer: bytes, header: dict[str, Any], payloads: list[bytes]) -> None:
        kind = header["type"]
        if kind == "hello":
            if type(header.get("protocol")) is not int or header["protocol"] != PROTOCOL:
                raise WireError(f"protocol {header.get('protocol')!r:.20}; this server speaks {PROTOCOL}: "
                                "install the same steerbridge version on both machines")
            session = _Session(secrets.token_hex(16))
            self._sessions[peer] = session
            self._sessions.move_to_end(peer)
            while len(self._sessions) > _MAX_SESSIONS:
                self._sessions.popitem(last=False)
            self._send(peer, {"type": "welcome", "protocol": PROTOCOL, "info": _info_dict(self.info)},
                       session=session.nonce)
            return
        session = self._sessions.get(peer)
        if session is None or header.get("session") != session.nonce:
            self.refused["session"] += 1
            self._send(peer, {"type": "error", "error": "no session: send hello first (or reconnect)"})
            return
        seq = header.get("seq")
        if type(seq) is not int or seq <= session.seq:
            raise WireError(f"seq {seq!r:.20} is not above {session.seq} (a replayed or reordered message)")
        session.seq = seq
        if kind == "ping":
            self._send(peer, {"type": "pong"}, session=session.nonce)
        elif kind == "job":
            self._accept_job(peer, session, header, payloads)
        elif kind == "cancel":
            job_id = header.get("job")
            if type(job_id) is not int:
                raise WireError("cancel needs an integer 'job'")
            self._cancelled.add((peer, job_id))
        elif kind == "bye":
            self._sessions.pop(peer, None)
        else:
            raise WireError(f"unknown message type {kind!r:.40}")

    def _accept_job(self, peer: bytes, session: _Session, header: dict[str, Any], payloads: list[bytes]) -> None:
        job_id = header.get("id")
        if type(job_id) is not int or not 0 <= job_id < 2**53:
            raise WireError("a job needs an integer 'id'")
        names = header.get("vectors", [])
        if not isinstance(names, list) or len(names) != len(payloads):
            raise WireError("'vectors' must name each attached vector file frame by its sha256")
        for name, data in zip(names, payloads):
            if not isinstance(name, str) or sha256(data) != name:
                raise WireError("an attached vector file does not match its sha256 (changed in transit?)")
            self._store_vector(name, data)
        try:
            job = job_from_wire(header.get("job"), self._vector_path)
        except WireError as exc:
            self._emit_now(peer, session.nonce, JobFailed(job_id, f"the engine server refused the job: {exc}",
                                                          "BadJob"))
            return
        if self._jobs.qsize() >= _MAX_QUEUED:
            self._emit_now(peer, session.nonce, JobFailed(job_id, "the engine server is busy (too many queued "
                                                                  "jobs); try again", "Busy"))
            return
        self._jobs.put((peer, session.nonce, job_id, job))

    def _store_vector(self, name: str, data: bytes) -> None:
        path = self._store / f"{name}.safetensors"
        if path.exists():
            return
        if sum(1 for _ in self._store.iterdir()) >= _MAX_VECTOR_FILES:
            raise WireError("the server's vector store is full; restart the engine server")
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def _vector_path(self, name: str) -> str:
        path = self._store / f"{name}.safetensors"
        if not path.is_file():
            raise WireError(f"vector {name[:12]}... was never sent in this session; the client resends it "
                            "after a reconnect")
        return str(path)

    def _send(self, peer: bytes, header: dict[str, Any], *, session: str | None = None) -> None:
        if session is not None:
            header = {**header, "session": session}
        self._router.send_multipart([peer, *seal(self._key, header)])

    def _emit_now(self, peer: bytes, session: str, event: Event) -> None:
        header, payloads = event_to_wire(event)
        self._router.send_multipart([peer, *seal(self._key, {**header, "session": session}, payloads)])

    def _deny(self, peer: bytes, reason: str, exc: Exception) -> None:
        # Unsigned (the peer may not hold the token) and rate-limited per peer, so a flood
        # of junk cannot turn the server into an amplifier.
        now = time.monotonic()
        if now - self._denied_at.get(peer, -1e9) < 1.0:
            return
        if len(self._denied_at) > 4096:
            self._denied_at.clear()
        self._denied_at[peer] = now
        log.debug("engine server: refused a message: %s", exc)
        self._router.send_multipart([peer, *denial(reason)])

    # ------------------------------------------------------------ rendering
    def _render_loop(self) -> None:
        push = self._ctx.socket(zmq.PUSH)
        push.connect(self._inproc)
        try:
            while (item := self._jobs.get()) is not None:
                peer, nonce, job_id, job = item
                if self._sessions.get(peer) is None or self._sessions[peer].nonce != nonce:
                    continue  # the client reconnected (new session) or left: it re-sends what it still wants

                def emit(event: Event, peer: bytes = peer, nonce: str = nonce) -> None:
                    header, payloads = event_to_wire(event)
                    push.send_multipart([peer, *seal(self._key, {**header, "session": nonce}, payloads)],
                                        copy=False)

                # Stopping cancels the render at its next step: the client re-sends it to the next server.
                self.runner.run(job_id, job, emit=emit,
                                cancelled=lambda k=(peer, job_id): k in self._cancelled or self._stop.is_set())
                self._cancelled.discard((peer, job_id))
                self.jobs_run += 1
        finally:
            push.close(0)


def _info_dict(info: ModelInfo) -> dict[str, Any]:
    return {"source": info.source, "fingerprint": info.fingerprint, "sample_rate": info.sample_rate,
            "channels": info.channels, "num_layers": info.num_layers}
