"""A scene's deck: aligned loops in fixed slots sharing one play position, and how its voices are mixed.

:class:`Deck` is the unit :class:`~steerbridge.bridge.audio.player.LoopPlayer`
plays, crossfades and retires. Control threads place loops in its slots
(:meth:`Deck.slot_for`) and write its target gains; the audio callback mixes
it (:meth:`Deck.mix_into`) from :class:`MixTables`, the per-sample tables and
scratch buffers allocated once per player, so mixing allocates nothing.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from steerbridge.bridge.audio.loops import Loop, one_pole_coefficient

__all__ = ["Deck", "MixTables", "SETTLED"]

SETTLED = 1e-5  # a gain this close to its target snaps to it (-100 dB)


class MixTables:
    """Preallocated per-sample tables and scratch buffers for mixing blocks of up to ``max_block`` frames.

    Per-sample tables are stored interleaved (each value repeated per channel):
    1-D ufuncs on them need no iterator buffers, whereas broadcasting a
    ``[frames, 1]`` ramp made numpy allocate ~34 KB per call.
    """

    def __init__(self, *, rate: int, channels: int, max_block: int, smoothing_s: float, fade_s: float) -> None:
        self.k = one_pole_coefficient(tau_s=smoothing_s, rate=rate)
        self.decay64 = (1.0 - self.k) ** np.arange(1, max_block + 1, dtype=np.float64)
        self.decay = np.repeat(self.decay64.astype(np.float32), channels)
        self.ramp = np.empty(max_block * channels, np.float32)
        self.tmp = np.empty(max_block * channels, np.float32)
        self.mixes = (np.empty(max_block * channels, np.float32), np.empty(max_block * channels, np.float32))
        self.fade_frames = max(1, round(fade_s * rate))
        t = (np.arange(self.fade_frames, dtype=np.float64) + 0.5) / self.fade_frames
        self.fade_in = np.repeat(np.sin(t * np.pi / 2).astype(np.float32), channels)
        self.fade_out = np.repeat(np.cos(t * np.pi / 2).astype(np.float32), channels)


class Deck:
    """One scene: aligned loops in fixed slots sharing one play position."""

    __slots__ = ("scene", "frames", "loops", "target", "snap", "gain", "pos")

    def __init__(self, scene: Hashable, frames: int, slots: int) -> None:
        self.scene = scene
        self.frames = frames
        self.loops: list[Loop | None] = [None] * slots
        self.target = np.zeros(slots)  # control writes, with one copyto
        self.snap = np.zeros(slots)  # the callback's per-block copy of target
        self.gain = np.zeros(slots)  # callback-owned smoothed gains; control only reads
        self.pos = 0  # callback-owned, in frames

    # -- control side (under the player's lock) -----------------------------
    def slot_for(self, loop: Loop, wanted: set[Loop]) -> tuple[int, Loop | None, bool]:
        """Put ``loop`` in a slot: ``(slot, the loop it replaced or None, whether a sounding voice was cut)``.

        The replaced loop may still be read by the callback: the caller parks it in the graveyard.
        """
        slots = len(self.loops)
        for j, held in enumerate(self.loops):
            if held is loop:
                return j, None, False
        free = [j for j, held in enumerate(self.loops) if held is None]
        if not free:  # idle: silent and meant to stay silent
            free = [j for j in range(slots) if self.target[j] == 0.0 and self.gain[j] == 0.0]
        stole = not free
        if free:
            j = free[0]
        else:  # every slot is sounding: cut the quietest voice we no longer want
            j = min((j for j in range(slots) if self.loops[j] not in wanted), key=lambda j: self.gain[j])
        replaced = self.loops[j]
        # NB: a list item store is atomic; the callback sees the old loop or the new one.
        self.loops[j] = loop
        return j, replaced, stole

    # -- audio side ----------------------------------------------------------
    def mix_into(self, dst: np.ndarray, n: int, channels: int, t: MixTables) -> bool:
        """Add the voices into ``dst`` (already zeroed), gliding each gain to its snapped target; False: no loop."""
        ch, length, start = channels, self.frames, self.pos
        has_loop = False
        for j in range(len(self.loops)):
            loop = self.loops[j]
            if loop is None:
                continue
            has_loop = True
            g0, tg = float(self.gain[j]), float(self.snap[j])
            ramp = None
            if g0 != tg:
                d = g0 - tg
                ramp = t.ramp[:n * ch]
                np.multiply(t.decay[:n * ch], d, out=ramp)
                ramp += tg
                end = tg + d * float(t.decay64[n - 1])
                self.gain[j] = tg if abs(end - tg) < SETTLED else end
            elif tg == 0.0:
                continue
            src, pos, done = loop.data, start, 0
            while done < n:  # wraps at the loop end (maybe several times for tiny loops)
                m = min(n - done, length - pos)
                piece = src[pos * ch:(pos + m) * ch]
                tmp = t.tmp[:m * ch]
                if ramp is None:
                    np.multiply(piece, tg, out=tmp)
                else:
                    np.multiply(piece, ramp[done * ch:(done + m) * ch], out=tmp)
                out = dst[done * ch:(done + m) * ch]
                np.add(out, tmp, out=out)
                done += m
                pos = (pos + m) % length
        self.pos = (start + n) % length
        return has_loop
