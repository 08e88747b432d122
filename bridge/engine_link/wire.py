"""The remote engine's wire format: a JSON header, raw frames, and an HMAC on every message.

A message is a ZeroMQ multipart message ``[mac, header, *payloads]``:

- ``header``: UTF-8 JSON object with a ``type`` (``hello``, ``job``, ``result``, ...);
- ``payloads``: raw bytes, e.g. a loop as little-endian float32 ``[channels, samples]`` or a
  vector file's bytes (safetensors). Nothing is ever pickled, on either side;
- ``mac``: HMAC-SHA256 under the shared token over a protocol tag and every other frame,
  each length-prefixed (so frames cannot be re-cut without breaking it). It is checked
  before anything else is parsed.

The HMAC proves who sent a message and that it was not changed; it does not hide it
(prompts and audio travel in the clear: use a trusted network or a tunnel, see the README's
"Two machines"). Replays are refused by the server: every client message after ``hello``
carries the session nonce the server gave it and a strictly increasing ``seq``.

Every decoder here checks types, ranges and sizes and raises :class:`WireError` saying what
was wrong: a remote peer is untrusted input.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from steerbridge.bridge.engine_link.jobs import (Event, JobCancelled, JobDone, JobFailed, Progress, RenderJob,
                                                 RenderResult, SweepJob, VectorTerm)
from steerbridge.engine.vocab import ALPHA_UNITS, CFG_MODES, MAX_BPM, MAX_SECONDS, MAX_STEPS, MIN_BPM

__all__ = ["PROTOCOL", "DEFAULT_PORT", "WireError", "AuthError", "seal", "unseal", "denial", "read_denial",
           "load_token", "write_new_token", "default_token_path", "job_to_wire", "job_from_wire", "event_to_wire",
           "event_from_wire", "MAX_MESSAGE_BYTES", "sha256"]

PROTOCOL = 1
DEFAULT_PORT = 5599
_TAG = b"steerbridge-engine/1"
MAX_MESSAGE_BYTES = 256 * 2**20  # zmq drops bigger inbound parts before we see them (ZMQ_MAXMSGSIZE)
MAX_HEADER_BYTES = 256 * 2**10
MAX_FRAMES = 66  # header + mac + up to 64 payloads (vector files of one job)
MAX_TEXT = 4096  # prompts, sampler names
MAX_TERMS = 32
MAX_SWEEP = 256
_INT_MAX = 2**53


class WireError(ValueError):
    """A message that is malformed, truncated or out of range; the text says what."""


class AuthError(WireError):
    """A message whose HMAC does not verify: another token, or changed in transit."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- framing
def _mac(key: bytes, frames: Sequence[bytes | memoryview]) -> bytes:
    h = hmac.new(key, _TAG, hashlib.sha256)
    for frame in frames:
        h.update(len(frame).to_bytes(8, "little"))
        h.update(frame)
    return h.digest()


def seal(key: bytes, header: dict[str, Any], payloads: Sequence[bytes | memoryview] = ()) -> list[bytes | memoryview]:
    """The frames of one authenticated message."""
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return [_mac(key, [head, *payloads]), head, *payloads]


def unseal(key: bytes, frames: Sequence[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """``(header, payloads)`` of a message, after checking its HMAC and shape."""
    if not 2 <= len(frames) <= MAX_FRAMES:
        raise WireError(f"a message has 2..{MAX_FRAMES} frames, this one {len(frames)}")
    mac, head, *payloads = frames
    if len(mac) != 32 or not hmac.compare_digest(mac, _mac(key, [head, *payloads])):
        raise AuthError("the message's HMAC does not match this token")
    if len(head) > MAX_HEADER_BYTES:
        raise WireError(f"header of {len(head)} bytes (at most {MAX_HEADER_BYTES})")
    try:
        header = json.loads(head.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WireError(f"header is not UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise WireError("header must be a JSON object with a string 'type'")
    return header, list(payloads)


def _no_constant(name: str) -> Any:
    raise WireError(f"{name} is not allowed in a header")


def denial(reason: str) -> list[bytes]:
    """The one unauthenticated answer (empty mac frame): the server cannot sign for a stranger's token."""
    return [b"", json.dumps({"type": "denied", "reason": reason[:500]}).encode()]


def read_denial(frames: Sequence[bytes]) -> str | None:
    """The reason if ``frames`` is a denial, else None."""
    if len(frames) != 2 or frames[0] != b"" or len(frames[1]) > 4096:
        return None
    try:
        obj = json.loads(frames[1])
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(obj, dict) and obj.get("type") == "denied" and isinstance(obj.get("reason"), str):
        return obj["reason"]
    return None


# ---------------------------------------------------------------- tokens
def default_token_path() -> Path:
    """Where the server writes, and the client looks for, the token on one machine."""
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "steerbridge" / "engine.token"


def write_new_token(path: str | os.PathLike[str]) -> Path:
    """A fresh random token (256 bits, hex) in a file only its owner can read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
    return path


def load_token(path: str | os.PathLike[str]) -> bytes:
    """The token in ``path``; refuses a short token or a file others can read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise FileNotFoundError(f"token file {path} does not exist; start `steerbridge engine-server` once to "
                                "create it, or copy the server's token file here") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read token file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"token file {path} can be read by other users (mode {stat.filemode(mode)}); "
                         f"make it private: chmod 600 {path}")
    if len(text) < 32 or any(c.isspace() for c in text):
        raise ValueError(f"token file {path} must hold one token of at least 32 characters (no spaces); "
                         "make one with `steerbridge engine-server --new-token PATH`")
    return text.encode("utf-8")


# ---------------------------------------------------------------- value checks
def _int(obj: dict[str, Any], key: str, lo: int = 0, hi: int = _INT_MAX) -> int:
    v = obj.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise WireError(f"'{key}' must be an integer in {lo}..{hi}, got {v!r:.40}")
    return v


def _num(obj: dict[str, Any], key: str, lo: float = -1e9, hi: float = 1e9) -> float:
    v = obj.get(key)
    if type(v) not in (int, float) or not math.isfinite(v) or not lo <= v <= hi:
        raise WireError(f"'{key}' must be a finite number in {lo:g}..{hi:g}, got {v!r:.40}")
    return float(v)


def _str(obj: dict[str, Any], key: str, *, optional: bool = False, choices: Sequence[str] | None = None) -> Any:
    v = obj.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, str) or len(v) > MAX_TEXT or (choices is not None and v not in choices):
        allowed = f" (one of {', '.join(choices)})" if choices else f" of at most {MAX_TEXT} characters"
        raise WireError(f"'{key}' must be a string{allowed}, got {v!r:.40}")
    return v


def _list(obj: dict[str, Any], key: str, most: int, *, optional: bool = False) -> Any:
    v = obj.get(key)
    if v is None and optional:
        return None
    if not isinstance(v, list) or len(v) > most:
        raise WireError(f"'{key}' must be a list of at most {most} items, got {v!r:.40}")
    return v


def _only(obj: Any, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise WireError(f"{what} must be a JSON object, got {type(obj).__name__}")
    extra = set(obj) - keys
    if extra:
        raise WireError(f"{what}: unknown field(s) {sorted(extra)[:5]}")
    return obj


def _sha(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise WireError(f"a vector reference must be a sha256 hex digest, got {value!r:.70}")
    return value


def _layers(value: Any, key: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 1024 or any(type(x) is not int or not 0 <= x < 4096
                                                                  for x in value):
        raise WireError(f"'{key}' must be a list of layer numbers 0..4095, got {value!r:.40}")
    return tuple(value)


# ---------------------------------------------------------------- jobs
_TERM_KEYS = {"vector", "alpha", "layers", "one_to_all", "orthogonalize_against"}
_RENDER_KEYS = {"prompt", "seed", "seconds", "steps", "cfg_scale", "sampler", "negative_prompt", "terms",
                "cfg_mode", "start_step", "alpha_units", "bpm"}


def _render_to_wire(job: RenderJob, vector: Callable[[str], str]) -> dict[str, Any]:
    terms = [{"vector": vector(t.path), "alpha": t.alpha, "layers": list(t.layers) if t.layers is not None else None,
              "one_to_all": t.one_to_all, "orthogonalize_against": [vector(p) for p in t.orthogonalize_against]}
             for t in job.terms]
    return {"prompt": job.prompt, "seed": job.seed, "seconds": job.seconds, "steps": job.steps,
            "cfg_scale": job.cfg_scale, "sampler": job.sampler, "negative_prompt": job.negative_prompt,
            "terms": terms, "cfg_mode": job.cfg_mode, "start_step": job.start_step, "alpha_units": job.alpha_units,
            "bpm": job.bpm}


def job_to_wire(job: RenderJob | SweepJob, vector: Callable[[str], str]) -> dict[str, Any]:
    """JSON for ``job``; ``vector(path)`` names each vector file by its content hash."""
    if isinstance(job, RenderJob):
        return {"render": _render_to_wire(job, vector)}
    if isinstance(job, SweepJob):
        return {"sweep": [_render_to_wire(r, vector) for r in job.renders]}
    raise WireError(f"a remote engine runs render jobs and sweeps, not {type(job).__name__}: run "
                    "`steerbridge extract` on the GPU machine itself (or with --ray)")


def _render_from_wire(obj: Any, vector: Callable[[str], str]) -> RenderJob:
    o = _only(obj, _RENDER_KEYS, "render job")
    terms = []
    for raw in _list(o, "terms", MAX_TERMS):
        t = _only(raw, _TERM_KEYS, "vector term")
        one = t.get("one_to_all")
        if one is not None and (type(one) is not int or not 0 <= one < 4096):
            raise WireError(f"'one_to_all' must be a layer number or null, got {one!r:.40}")
        terms.append(VectorTerm(path=vector(_sha(t.get("vector"))), alpha=_num(t, "alpha"),
                                layers=_layers(t.get("layers"), "layers"), one_to_all=one,
                                orthogonalize_against=tuple(vector(_sha(p)) for p in
                                                            _list(t, "orthogonalize_against", MAX_TERMS))))
    return RenderJob(prompt=_str(o, "prompt"), seed=_int(o, "seed", -2**63, 2**63 - 1),
                     seconds=_num(o, "seconds", 0.01, MAX_SECONDS), steps=_int(o, "steps", 1, MAX_STEPS),
                     cfg_scale=_num(o, "cfg_scale", 0.0, 1e4), sampler=_str(o, "sampler", optional=True),
                     negative_prompt=_str(o, "negative_prompt", optional=True), terms=tuple(terms),
                     cfg_mode=_str(o, "cfg_mode", choices=CFG_MODES), start_step=_int(o, "start_step", 0, 10_000),
                     alpha_units=_str(o, "alpha_units", choices=ALPHA_UNITS),
                     bpm=None if o.get("bpm") is None else _num(o, "bpm", MIN_BPM, MAX_BPM))


def job_from_wire(obj: Any, vector: Callable[[str], str]) -> RenderJob | SweepJob:
    """The job in ``obj``; ``vector(sha)`` gives the local path of a vector file (or raises WireError)."""
    o = _only(obj, {"render", "sweep"}, "job")
    if len(o) != 1:
        raise WireError("a job is either {'render': ...} or {'sweep': [...]}")
    if "render" in o:
        return _render_from_wire(o["render"], vector)
    renders = _list(o, "sweep", MAX_SWEEP)
    if not renders:
        raise WireError("a sweep needs at least one render")
    return SweepJob(tuple(_render_from_wire(r, vector) for r in renders))


# ---------------------------------------------------------------- events (server -> client)
def event_to_wire(event: Event) -> tuple[dict[str, Any], list[bytes | memoryview]]:
    if isinstance(event, Progress):
        return {"type": "progress", "job": event.job_id, "done": event.done, "total": event.total}, []
    if isinstance(event, RenderResult):
        audio = np.ascontiguousarray(event.audio, dtype="<f4")
        if audio.ndim != 2:
            raise WireError(f"a loop must be [channels, samples], got shape {audio.shape}")
        return ({"type": "result", "job": event.job_id, "index": event.index, "rate": event.sample_rate,
                 "render_s": event.render_s, "shape": list(audio.shape)}, [memoryview(audio).cast("B")])
    if isinstance(event, JobDone):
        return {"type": "done", "job": event.job_id, "detail": event.detail}, []
    if isinstance(event, JobFailed):
        return {"type": "failed", "job": event.job_id, "error": event.error[:20_000], "kind": event.kind[:200]}, []
    if isinstance(event, JobCancelled):
        return {"type": "cancelled", "job": event.job_id}, []
    raise WireError(f"{type(event).__name__} does not travel to clients")


def event_from_wire(header: dict[str, Any], payloads: Sequence[bytes]) -> Event:
    """The job event in a server message (result audio: a read-only float32 view of the frame)."""
    kind, job = header["type"], _int(header, "job")
    if kind == "progress":
        return Progress(job, _int(header, "done"), _int(header, "total"))
    if kind == "result":
        shape = _list(header, "shape", 2)
        if len(shape) != 2 or any(type(n) is not int or n < 0 for n in shape) or len(payloads) != 1:
            raise WireError(f"a result needs shape [channels, samples] and one audio frame, got {shape!r:.40}")
        if len(payloads[0]) != shape[0] * shape[1] * 4:
            raise WireError(f"audio frame of {len(payloads[0])} bytes does not match shape {shape} float32")
        audio = np.frombuffer(payloads[0], dtype="<f4").reshape(shape)
        return RenderResult(job, audio, _int(header, "rate", 1, 10**6), _num(header, "render_s", 0.0),
                            _int(header, "index"))
    if kind == "done":
        return JobDone(job, _str(header, "detail"))
    if kind == "failed":
        return JobFailed(job, str(header.get("error", "")), str(header.get("kind", "EngineError")))
    if kind == "cancelled":
        return JobCancelled(job)
    raise WireError(f"unknown event type {kind!r:.40}")
