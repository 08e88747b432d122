"""Structural checks of incoming OSC datagrams, before python-osc parses them.

python-osc (1.10) trusts its input more than a server on a network should:

- a bundle element with a negative size moves the parser *backwards*, and a
  size of -4 makes it re-read the same element forever (the server hangs);
- an unknown type tag is skipped with a ``logging.warning`` per packet (a log
  flood) and leaves the arguments misaligned;
- a string that is not UTF-8 raises ``UnicodeDecodeError``, which it does not
  catch; nested bundles recurse once per level;
- an address such as ``/a/****...*z`` becomes a regular expression whose
  backtracking grows exponentially with the number of wildcards, matched
  against every mapped address;
- ``[]`` in an address becomes an invalid regular expression (``re.error``).

:func:`check_packet` walks the datagram with explicit bounds and refuses all
of these with a :class:`BadPacket` whose ``kind`` names the problem (used as
the once-per-kind log key), so python-osc only ever parses well-formed,
bounded packets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["BadPacket", "PacketLimits", "check_packet", "TYPE_TAGS"]

_BUNDLE = b"#bundle\x00"
# Tags python-osc parses, with their fixed payload size (None: variable).
TYPE_TAGS: dict[str, int | None] = {"i": 4, "f": 4, "r": 4, "m": 4, "h": 8, "d": 8, "t": 8,
                                    "s": None, "b": None, "T": 0, "F": 0, "N": 0, "[": 0, "]": 0}
_WILDCARDS = frozenset("*?[{")


class BadPacket(ValueError):
    """A datagram refused before parsing; ``kind`` is a short stable name for logs and replies."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class PacketLimits:
    max_bytes: int = 16384  # a prompt is a few hundred bytes; more is a mistake or an attack
    max_depth: int = 4  # nested bundles
    max_messages: int = 256  # messages in one packet (bundles included)
    max_address: int = 256  # bytes of an address pattern
    max_wildcards: int = 8  # '*', '?', '[', '{' in one address (regex backtracking)
    max_args: int = 64


def check_packet(data: bytes, limits: PacketLimits = PacketLimits()) -> int:
    """Raise :class:`BadPacket` unless ``data`` is a well-formed OSC message or bundle; returns its message count."""
    if len(data) > limits.max_bytes:
        raise BadPacket("too_large", f"packet of {len(data)} bytes; at most {limits.max_bytes} are accepted")
    counter = [0]
    _element(bytes(data), 0, limits, counter)
    return counter[0]


def _element(data: bytes, depth: int, limits: PacketLimits, counter: list[int]) -> None:
    if data.startswith(_BUNDLE):
        _bundle(data, depth, limits, counter)
    elif len(data) and data[0] == ord("/"):
        counter[0] += 1
        if counter[0] > limits.max_messages:
            raise BadPacket("too_many", f"more than {limits.max_messages} messages in one packet")
        _message(data, limits)
    else:
        raise BadPacket("not_osc", "not an OSC message ('/...') or bundle ('#bundle')")


def _bundle(data: bytes, depth: int, limits: PacketLimits, counter: list[int]) -> None:
    if depth >= limits.max_depth:
        raise BadPacket("too_deep", f"bundles nested deeper than {limits.max_depth}")
    if len(data) < 16:
        raise BadPacket("truncated", "bundle without a complete time tag")
    index = 16  # '#bundle\0' + 8-byte time tag (any value: we never wait for it)
    while index < len(data):
        if index + 4 > len(data):
            raise BadPacket("truncated", "bundle element size cut off")
        (size,) = struct.unpack_from(">i", data, index)
        index += 4
        if size <= 0 or size % 4 or index + size > len(data):
            raise BadPacket("bad_bundle", f"bundle element size {size} is not a positive multiple of 4 "
                                          f"within the {len(data) - index} bytes left")
        _element(data[index:index + size], depth + 1, limits, counter)
        index += size


def _message(data: bytes, limits: PacketLimits) -> None:
    address, index = _string(data, 0, "address")
    if len(address) > limits.max_address:
        raise BadPacket("bad_address", f"address of {len(address)} bytes; at most {limits.max_address}")
    if sum(address.count(c) for c in _WILDCARDS) > limits.max_wildcards:
        raise BadPacket("bad_address", f"more than {limits.max_wildcards} wildcards in {address[:64]!r}")
    if "[]" in address or address.count("[") != address.count("]") or address.count("{") != address.count("}"):
        raise BadPacket("bad_address", f"unbalanced or empty brackets in {address[:64]!r}")
    if index >= len(data):
        return  # no type tag: a message without arguments
    tags, index = _string(data, index, "type tag")
    if not tags.startswith(","):
        raise BadPacket("bad_type_tag", f"type tag string {tags[:32]!r} does not start with ','")
    tags = tags[1:]
    if len(tags) > limits.max_args:
        raise BadPacket("bad_type_tag", f"{len(tags)} type tags; at most {limits.max_args}")
    depth = 0
    for tag in tags:
        if tag not in TYPE_TAGS:
            raise BadPacket("bad_type_tag", f"unsupported OSC type tag {tag!r}; use i h f d s b T F N [ ]")
        depth += (tag == "[") - (tag == "]")
        if depth < 0 or depth > 4:
            raise BadPacket("bad_type_tag", f"unbalanced or too deep arrays in type tags ',{tags[:32]}'")
        size = TYPE_TAGS[tag]
        if tag == "s":
            _, index = _string(data, index, "string argument")
            continue
        if tag == "b":
            if index + 4 > len(data):
                raise BadPacket("truncated", "blob size cut off")
            (size,) = struct.unpack_from(">i", data, index)
            if size < 0:
                raise BadPacket("truncated", f"negative blob size {size}")
            index += 4
            size += -size % 4
        if index + size > len(data):
            raise BadPacket("truncated", f"argument {tag!r} runs past the end of the packet")
        index += size
    if depth:
        raise BadPacket("bad_type_tag", f"unclosed array in type tags ',{tags[:32]}'")


def _string(data: bytes, start: int, what: str) -> tuple[str, int]:
    end = data.find(b"\x00", start)
    if end < 0:
        raise BadPacket("truncated", f"{what} is not terminated by a null byte")
    padded = end + 1 + (-(end + 1 - start) % 4)
    if padded > len(data):
        raise BadPacket("truncated", f"{what} padding runs past the end of the packet")
    try:
        return data[start:end].decode("utf-8"), padded
    except UnicodeDecodeError:
        raise BadPacket("bad_string", f"{what} is not UTF-8 text") from None
