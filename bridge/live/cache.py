"""A bounded LRU cache of rendered loops, keyed by everything that changes the audio.

The key is a digest of the model fingerprint and the whole :class:`RenderJob`
(prompt, seed, seconds, steps, sampler, cfg, cfg mode, start step, alpha
units, every term's alpha, layers and orthogonalisation) in which each vector
*path* is replaced by a digest of the file's bytes: re-extracting a vector
into the same file must not serve stale loops. Hashing the dataclass as a
whole means a field added to RenderJob later is part of the key for free.

File digests are memoised by (path, size, mtime_ns), so a key costs a stat
per vector, not a read. Cached arrays are made read-only: a consumer that
writes into a loop would silently corrupt every later hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass

import numpy as np

from steerbridge.bridge.engine_link.jobs import RenderJob

__all__ = ["CachedLoop", "CacheStats", "LoopCache", "loop_key", "file_digest"]

_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, memoised by (path, size, mtime)."""
    st = os.stat(path)
    ident = (os.fspath(path), st.st_size, st.st_mtime_ns)
    with _digests_lock:
        if ident in _digests:
            return _digests[ident]
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    with _digests_lock:
        _digests[ident] = h.hexdigest()
    return h.hexdigest()


def loop_key(job: RenderJob, *, fingerprint: str) -> str:
    """The cache key of ``job`` rendered by the model with ``fingerprint``."""
    fields = asdict(job)
    for term in fields["terms"]:
        term["path"] = file_digest(term["path"])
        term["orthogonalize_against"] = [file_digest(p) for p in term["orthogonalize_against"]]
    blob = json.dumps({"model": fingerprint, "job": fields}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class CachedLoop:
    audio: np.ndarray  # float32 [channels, samples], read-only
    sample_rate: int

    @property
    def nbytes(self) -> int:
        return int(self.audio.nbytes)


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    limit_bytes: int
    hits: int
    misses: int
    evictions: int


class LoopCache:
    """Thread-safe LRU of :class:`CachedLoop` bounded by ``max_mb`` megabytes (10**6 bytes)."""

    def __init__(self, *, max_mb: float = 512.0) -> None:
        if max_mb <= 0:
            raise ValueError(f"max_mb={max_mb}: the loop cache needs a positive size in MB")
        self.limit_bytes = int(max_mb * 1_000_000)
        self._entries: OrderedDict[str, CachedLoop] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = self._evictions = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> CachedLoop | None:
        """The loop for ``key`` (marked most recently used), or None."""
        with self._lock:
            loop = self._entries.get(key)
            if loop is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return loop

    def __contains__(self, key: str) -> bool:
        with self._lock:  # no LRU touch, no hit counting: planning asks, playing gets
            return key in self._entries

    def put(self, key: str, audio: np.ndarray, sample_rate: int) -> CachedLoop | None:
        """Store a loop; evicts least recently used loops to stay under the limit.

        Returns the stored entry, or None when one loop alone is larger than the
        whole cache (it is not stored; raise ``max_mb`` to keep such loops).
        """
        audio = np.array(audio, dtype=np.float32, copy=True)  # own it; callers keep theirs
        audio.flags.writeable = False
        loop = CachedLoop(audio, int(sample_rate))
        if loop.nbytes > self.limit_bytes:
            return None
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = loop
            self._bytes += loop.nbytes
            while self._bytes > self.limit_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes
                self._evictions += 1
        return loop

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._entries), self._bytes, self.limit_bytes,
                              self._hits, self._misses, self._evictions)

    def __len__(self) -> int:
        return len(self._entries)
