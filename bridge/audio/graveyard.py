"""Graveyard: where the player's control side parks what the audio callback may still hold.

Freeing a loop (megabytes) or a deck runs arbitrary deallocation code; on the
audio thread that is a deadline miss waiting to happen. So the callback never
drops the last reference to anything: every object it may drop (a replaced
voice, a deck fading out or pending when control replaced it, a finished deck)
is first handed to the graveyard by the control side, and a control thread
(the session's housekeeping, or the next control call) releases it with
:meth:`reap`.

An entry is released only when both hold:

- the callback no longer reaches it through its own attributes (``live``, the
  ids of the decks it is playing, fading, holding pending or may take from the
  mailbox); while it does, the entry is re-stamped and waits;
- two whole blocks have passed since it was last seen live: a reference the
  callback still holds in a local variable dies with the block it is mixing.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Graveyard"]


class Graveyard:
    """Not thread-safe: the player calls it under its control lock."""

    def __init__(self) -> None:
        self._entries: list[tuple[int, object]] = []  # (block when last seen live, object)

    def add(self, obj: object, block: int) -> None:
        self._entries.append((block, obj))

    def reap(self, now: int, live: Iterable[int] = (), *, force: bool = False) -> int:
        """Release what the callback cannot reach any more; returns how many were released.

        ``force``: the callback is stopped, release everything.
        """
        if force:
            released = len(self._entries)
            self._entries = []
            return released
        live_ids = set(live)
        kept = [(now if id(obj) in live_ids else b, obj) for b, obj in self._entries
                if id(obj) in live_ids or now - b < 2]
        released = len(self._entries) - len(kept)
        self._entries = kept
        return released

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, obj: object) -> bool:
        return any(o is obj for _, o in self._entries)
