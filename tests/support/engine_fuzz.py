"""A fuzzer for the engine server: malformed, truncated, forged and replayed ZeroMQ messages.

:func:`fuzz_messages` yields frame lists, a seeded mix of:

- junk: random frame counts (1..70) of random bytes (no valid HMAC);
- truncated or bit-flipped copies of valid signed messages (HMAC breaks);
- signed with another token;
- *signed* (the fuzzer holds the token) but malformed: bad JSON, non-objects, wrong
  protocol, a missing or stale session, replayed ``seq``, and jobs whose every field in
  turn is given a wrong type or an out-of-range value, plus vector frames whose sha256
  does not match. None of them is a valid job, so the server must render nothing.

``session`` and a ``seq`` counter come from a real ``hello`` so the signed messages reach
the job decoder instead of stopping at the session check.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

from steerbridge.bridge.engine_link.wire import _mac, seal

__all__ = ["fuzz_messages", "valid_job_header"]

_BAD_VALUES: list[Any] = [None, True, "x", -1, 2**70, 1e308, -1e308, [], {}, [1, 2], "9" * 5000, 0.0]
_FIELDS = ["prompt", "seed", "seconds", "steps", "cfg_scale", "sampler", "negative_prompt", "terms", "cfg_mode",
           "start_step", "alpha_units"]


def valid_job_header(job_id: int) -> dict[str, Any]:
    render = {"prompt": "fuzz", "seed": 0, "seconds": 0.5, "steps": 2, "cfg_scale": 6.0, "sampler": None,
              "negative_prompt": None, "terms": [], "cfg_mode": "cond_only", "start_step": 0, "alpha_units": "absolute"}
    return {"type": "job", "id": job_id, "job": {"render": render}, "vectors": []}


def _bad_job(rng: random.Random, job_id: int) -> tuple[dict[str, Any], list[bytes]]:
    header = valid_job_header(job_id)
    render = header["job"]["render"]
    case = rng.randrange(9)
    if case == 0:  # one field wrong (never valid: the bad values break every field's type or range)
        field = rng.choice(_FIELDS)
        render[field] = rng.choice([v for v in _BAD_VALUES if not _fits(field, v)])
    elif case == 1:  # a required field missing (sampler and negative_prompt may be left out)
        del render[rng.choice([f for f in _FIELDS if f not in ("sampler", "negative_prompt")])]
    elif case == 2:
        render["unknown_field"] = 1
    elif case == 3:  # a term naming a vector never sent
        render["terms"] = [{"vector": "ab" * 32, "alpha": 1.0, "layers": None, "one_to_all": None,
                            "orthogonalize_against": []}]
    elif case == 4:  # a term with a malformed hash or fields
        render["terms"] = [{"vector": rng.choice(["zz", "../../etc/passwd", 5, None]), "alpha": "1"}]
    elif case == 5:  # an attached frame that does not match its name
        return {**header, "vectors": ["00" * 32]}, [rng.randbytes(rng.randrange(0, 200))]
    elif case == 6:
        header["job"] = rng.choice([None, [], {"render": 1, "sweep": []}, {"sweep": []}, {"sweep": [1] * 3}, "job"])
    elif case == 7:
        header["id"] = rng.choice([None, -5, "7", 2**60, 1.5])
    else:
        header["vectors"] = rng.choice([None, "x", [1], ["a", "b"]])
    return header, []


def _fits(field: str, value: Any) -> bool:
    # The few bad values that are in fact valid for a field (e.g. None for an optional string).
    if field in ("sampler", "negative_prompt"):
        return value is None or (isinstance(value, str) and len(value) <= 4096)
    if field == "terms":
        return value == []
    if field == "seed":
        return type(value) is int and -2**63 <= value < 2**63
    if field == "prompt":
        return isinstance(value, str) and len(value) <= 4096
    if field == "cfg_scale":
        return type(value) in (int, float) and 0.0 <= value <= 1e4
    if field == "start_step":
        return type(value) is int and 0 <= value <= 10_000
    return False


def fuzz_messages(key: bytes, session: str, *, count: int, seed: int = 0,
                  seq_start: int = 1) -> Iterator[list[bytes]]:
    """``count`` bad messages for a server holding ``key``; ``session`` from a real hello."""
    rng = random.Random(seed)
    seq = itertools.count(seq_start)
    valid = [bytes(f) for f in seal(key, {**valid_job_header(1), "session": session, "seq": 1})]
    for i in range(count):
        kind = i % 8
        if kind == 0:  # junk
            yield [rng.randbytes(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 70))]
        elif kind == 1:  # truncated: fewer frames, or a frame cut short
            frames = list(valid)
            if rng.random() < 0.5:
                yield frames[:rng.randrange(1, len(frames))]
            else:
                j = rng.randrange(len(frames))
                frames[j] = frames[j][:rng.randrange(len(frames[j]))]
                yield frames
        elif kind == 2:  # one bit flipped
            frames = list(valid)
            j = rng.randrange(len(frames))
            data = bytearray(frames[j])
            if data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            frames[j] = bytes(data)
            yield frames
        elif kind == 3:  # another token
            yield [bytes(f) for f in seal(rng.randbytes(32), valid_job_header(i))]
        elif kind == 4:  # signed, but not JSON / not an object / no type
            head = rng.choice([rng.randbytes(rng.randrange(1, 100)), b"[1,2]", b'{"type": 5}', b"NaN", b'"hello"',
                               b"{" * 5000, b'{"type":"job","x":NaN}', "\ud800".encode("utf-8", "surrogatepass")])
            yield [_mac(key, [head]), head]
        elif kind == 5:  # signed, without or with a wrong session / a replayed seq
            header = {"type": rng.choice(["job", "ping", "cancel", "bye", "mystery"]),
                      "session": rng.choice([None, "0" * 32, session]), "seq": rng.choice([0, -1, "1", None])}
            yield [bytes(f) for f in seal(key, header)]
        elif kind == 6:  # signed hello with another protocol
            yield [bytes(f) for f in seal(key, {"type": "hello", "protocol": rng.choice([None, 0, 2, "1", 1.0])})]
        else:  # signed job in a live session, malformed somewhere
            header, payloads = _bad_job(rng, 1000 + i)
            frames = seal(key, {**header, "session": session, "seq": next(seq)}, payloads)
            yield [bytes(f) for f in frames]
