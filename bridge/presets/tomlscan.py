"""Where each key of a TOML file sits: line numbers for preset error messages.

``tomllib`` parses values but forgets positions, and the preset contract promises that an
unknown or bad key is reported with its line. This scanner walks the text once
and maps every key path to the line it is written on. It understands what
presets use: ``[table]``, ``[[array.of.tables]]`` (entries numbered from 0),
``[knob.midi]`` after a ``[[knob]]``, ``key = value`` and one-line inline
tables ``midi = {channel = 1, cc = 74}``. It is best-effort by design: a path it
cannot place simply has no line, and the error message then names the key only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["KeyPath", "TomlLines", "scan_lines"]

# A key path: table names, array-of-table indices and the key itself, e.g.
# ("knob", 1, "midi", "cc").
KeyPath = tuple[str | int, ...]

_BARE = r"[A-Za-z0-9_\-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"|\'[^\']*\''
_KEY = rf"(?:{_BARE}|{_QUOTED})(?:\s*\.\s*(?:{_BARE}|{_QUOTED}))*"
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_KEY})\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_KEY})\s*=\s*(.*)$")
_INLINE_KEY = re.compile(rf"(?:^|[{{,])\s*({_KEY})\s*=")


def _split_key(text: str) -> list[str]:
    parts = re.findall(rf"{_BARE}|{_QUOTED}", text)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


@dataclass
class TomlLines:
    """Line numbers (1-based) of keys and table headers found in a TOML text."""

    keys: dict[KeyPath, int] = field(default_factory=dict)
    # Where each table (including array-of-table entries) starts and ends, so
    # that an edit can insert a key at the end of a table.
    tables: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest enclosing key or table."""
        probe = tuple(path)
        while probe:
            if probe in self.keys:
                return self.keys[probe]
            if probe in self.tables:
                return self.tables[probe][0]
            probe = probe[:-1]
        return None


def scan_lines(text: str) -> TomlLines:
    """Scan ``text`` and return where each key path is written."""
    found = TomlLines()
    counts: dict[tuple[str | int, ...], int] = {}  # array-of-tables lengths
    table: KeyPath = ()
    table_start = 0
    in_multiline: str | None = None
    lines = text.splitlines()
    for number, raw in enumerate(lines, start=1):
        if in_multiline is not None:
            # Skip the body of a multi-line string: its lines are not keys.
            if raw.count(in_multiline) % 2 == 1:
                in_multiline = None
            continue
        header = _HEADER.match(raw)
        if header:
            found.tables[table] = (table_start or 1, number - 1)
            names = _split_key(header.group(2))
            table = _resolve(names, counts, is_array=header.group(1) == "[[")
            table_start = number
            continue
        assign = _ASSIGN.match(raw)
        if not assign:
            continue
        key = (*table, *_split_key(assign.group(1)))
        found.keys.setdefault(key, number)
        value = assign.group(2).strip()
        if value.startswith("{"):
            for inner in _INLINE_KEY.finditer(value):
                found.keys.setdefault((*key, *_split_key(inner.group(1))), number)
        for quote in ('"""', "'''"):
            if value.startswith(quote) and value.count(quote) == 1:
                in_multiline = quote
    found.tables[table] = (table_start or 1, len(lines))
    return found


def _resolve(names: list[str], counts: dict[KeyPath, int], *, is_array: bool) -> KeyPath:
    """Turn header names into a key path, numbering array-of-table entries.

    ``[knob.midi]`` after the second ``[[knob]]`` becomes ("knob", 1, "midi").
    """
    path: list[str | int] = []
    for i, name in enumerate(names):
        path.append(name)
        last = i == len(names) - 1
        prefix = tuple(path)
        if last and is_array:
            counts[prefix] = counts.get(prefix, 0) + 1
            path.append(counts[prefix] - 1)
        elif prefix in counts:
            path.append(counts[prefix] - 1)
    return tuple(path)
