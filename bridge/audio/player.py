"""LoopPlayer: mixes aligned loops in the audio callback.

Who runs what:

- **The audio callback** (PortAudio's thread, or the null sink's clock) calls
  :meth:`LoopPlayer.process`. It copies and mixes preallocated buffers and
  nothing else: no array allocation, no lock, no I/O, no waiting. It owns the
  play positions and the smoothed gains.
- **Control threads** (OSC, MIDI, GUI, the render scheduler's delivery) call
  :meth:`set_voices`, :meth:`play`, :meth:`stop`. They serialise among
  themselves with a lock the callback never touches, do every allocation, and
  hand results over with single reference or single-array stores (the ``# NB:``
  comments say where GIL atomicity is relied on).

A *scene* (prompt + seed + length) is a deck (:mod:`steerbridge.bridge.audio.deck`) of up to ``slots`` aligned loops
sharing one play position; each slot has a target gain (set by control) and a
smoothed gain (one-pole, ~10 ms, per sample). A knob move sets new targets and
is heard at the next block. A new scene goes through a one-entry mailbox and
starts at the current deck's loop boundary (or at once) with an equal-power
crossfade of ``fade_s``.

Objects the callback may still hold a reference to (a replaced loop, a
finished deck, a deck replaced while it was fading or pending) are never
released by it: control parks them in a :class:`Graveyard` until the callback
can no longer reach them, so the callback never frees memory either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from steerbridge.bridge.audio.deck import SETTLED, Deck, MixTables
from steerbridge.bridge.audio.graveyard import Graveyard
from steerbridge.bridge.audio.loops import Loop

if TYPE_CHECKING:
    from steerbridge.bridge.audio.bars import BeatSync

__all__ = ["LoopPlayer", "PlayerStats"]

@dataclass(frozen=True)
class PlayerStats:
    blocks: int
    frames: int
    underruns: int  # blocks in which nothing could be played (no loop yet), zero-filled
    underrun_frames: int
    steals: int  # voices cut because every slot was busy
    playing: bool
    scene: Hashable
    position_s: float


class LoopPlayer:
    """Mix aligned loops with smoothed per-voice gains; see the module docstring."""

    def __init__(
        self,
        *,
        rate: int,
        channels: int = 2,
        max_block: int = 8192,
        slots: int = 16,
        smoothing_s: float = 0.010,
        fade_s: float = 0.030,
    ) -> None:
        if rate <= 0 or channels <= 0 or max_block <= 0 or slots <= 0:
            raise ValueError(
                f"LoopPlayer needs positive rate/channels/max_block/slots, got "
                f"{rate}/{channels}/{max_block}/{slots}"
            )
        self.rate, self.channels, self.slots, self.max_block = rate, channels, slots, max_block
        t = self._tables = MixTables(rate=rate, channels=channels, max_block=max_block, smoothing_s=smoothing_s,
                                     fade_s=fade_s)
        self.k, self.fade_frames = t.k, t.fade_frames
        self._decay64, self._decay, self._ramp, self._tmp, self._mixes = t.decay64, t.decay, t.ramp, t.tmp, t.mixes
        self._fade_in, self._fade_out = t.fade_in, t.fade_out
        # Callback-owned state.
        self._cur: Deck | None = None
        self._old: Deck | None = None  # fading out
        self._pending: Deck | None = None
        self._pending_now = False
        self._fade_pos = 0
        self._mail_taken = 0
        self._master = 1.0
        self._seen = (0, -1, 0.0)  # (target seq, block index, perf_counter) of the newest targets heard
        # Set by a beat clock (Link: bars.BarSync) on the audio thread: positions follow the clock and a
        # pending scene waits for its next bar line, not the loop's end. None: loops run free.
        self.sync: BeatSync | None = None
        self._offset = 0  # frames of this block mixed before the current _render call
        self.blocks = self.frames_out = self.underruns = self.underrun_frames = 0
        # Control-owned state.
        self._lock = threading.Lock()
        self._mail: tuple[int, Deck, bool] | None = None
        self._mail_seq = 0
        self._seq = 0
        self._master_target = 1.0
        self._volume = 1.0  # master volume; play()/stop() fade between 0 and it
        self._playing = True
        self._decks: dict[Hashable, Deck] = {}
        self._graveyard = Graveyard()
        self.steals = 0

    # ------------------------------------------------------------------ control side
    def set_voices(
        self,
        gains: Mapping[Loop, float],
        *,
        scene: Hashable,
        swap: Literal["boundary", "now"] = "boundary",
    ) -> int:
        """Set the target gain of each loop of ``scene``; loops left out fade to 0.

        A scene not playing or pending yet gets a new deck that starts at the
        current loop's boundary (``swap="boundary"``) or at once (``"now"``).
        Returns the sequence number of this update (see :meth:`last_heard`).
        """
        if swap not in ("boundary", "now"):
            raise ValueError(f"swap={swap!r}; use 'boundary' or 'now'")
        for loop, g in gains.items():
            if not (np.isfinite(g) and g >= 0.0):
                raise ValueError(f"gain {g!r} for loop {loop.key!r}; gains must be finite and >= 0")
            if loop.channels != self.channels or loop.rate != self.rate:
                raise ValueError(
                    f"loop {loop.key!r} is {loop.channels} ch @ {loop.rate} Hz but the player is "
                    f"{self.channels} ch @ {self.rate} Hz; prepare it with prepare_loop(rate={self.rate})"
                )
        with self._lock:
            self._reap_locked(force=False)
            deck = self._decks.get(scene)
            mailed = self._mail[1] if self._mail is not None else None
            if deck is not None and deck is not self._cur and (deck is not mailed or deck is self._old):
                deck = None  # fading out or gone: coming back to a scene starts it afresh
            lengths = {loop.frames for loop in gains}
            if deck is None:
                if len(lengths) != 1:
                    raise ValueError(f"scene {scene!r} needs loops of one length; got frame counts {sorted(lengths)}")
                deck = Deck(scene, lengths.pop(), self.slots)
            elif lengths - {deck.frames}:
                raise ValueError(
                    f"scene {scene!r} plays {deck.frames}-frame loops; got {sorted(lengths)}: "
                    "a different length is a new scene"
                )
            if sum(1 for g in gains.values() if g > 0) > self.slots:
                raise ValueError(f"{len(gains)} audible voices but only {self.slots} slots; raise slots=")
            target = np.zeros(self.slots)
            wanted = {loop for loop, g in gains.items() if g > 0}
            for loop in wanted:
                j, replaced, stole = deck.slot_for(loop, wanted)
                self.steals += stole
                if replaced is not None:
                    self._graveyard.add(replaced, self.blocks)
                target[j] = gains[loop]
            # NB: one C-level copy under the GIL; the callback snapshots the
            # array with one copyto too, so it never sees half an update.
            np.copyto(deck.target, target)
            self._seq += 1
            if self._decks.get(scene) is not deck:
                if (replaced := self._decks.get(scene)) is not None:  # fading or pending: the callback may drop it
                    self._graveyard.add(replaced, self.blocks)
                self._decks[scene] = deck
                self._mail_seq += 1
                # NB: a single attribute store is atomic; the callback takes the
                # mail when its sequence number differs from the one it took last.
                self._mail = (self._mail_seq, deck, swap == "now")
            return self._seq

    def play(self) -> None:
        """Fade in (one-pole) and resume from where :meth:`stop` paused."""
        self._playing = True
        self._master_target = self._volume  # NB: a float store; the callback smooths it

    def stop(self) -> None:
        """Fade out; once silent the positions freeze (pause)."""
        self._playing = False
        self._master_target = 0.0

    def set_volume(self, gain: float) -> float:
        """Master volume 0..1 (linear), reached through the same one-pole smoothing as play/stop."""
        self._volume = min(1.0, max(0.0, float(gain)))
        if self._playing:
            self._master_target = self._volume
        return self._volume

    @property
    def volume(self) -> float:
        return self._volume

    @property
    def playing(self) -> bool:
        return self._playing

    def reap(self, *, force: bool = False) -> None:
        """Release replaced loops and finished decks (``force``: the callback is stopped)."""
        with self._lock:
            self._reap_locked(force=force)

    def _reap_locked(self, *, force: bool) -> None:
        # NB: read in the direction decks move (mail -> pending -> cur -> old): one moved meanwhile is still seen.
        mail, pending, cur, old = self._mail, self._pending, self._cur, self._old
        live = {id(d) for d in (mail[1] if mail else None, pending, cur, old) if d is not None}
        for scene, deck in list(self._decks.items()):
            if id(deck) not in live:
                del self._decks[scene]
                self._graveyard.add(deck, self.blocks)
        self._graveyard.reap(self.blocks, live, force=force)

    def stats(self) -> PlayerStats:
        cur = self._cur
        return PlayerStats(
            blocks=self.blocks, frames=self.frames_out, underruns=self.underruns,
            underrun_frames=self.underrun_frames, steals=self.steals, playing=self.playing,
            scene=None if cur is None else cur.scene,
            position_s=0.0 if cur is None else cur.pos / self.rate,
        )

    @property
    def seq(self) -> int:
        """Sequence number of the newest :meth:`set_voices` call."""
        return self._seq

    def last_heard(self) -> tuple[int, int, float]:
        """``(seq, block, t)``: newest :meth:`set_voices` seq the callback used, the
        index of the first block that used it, and ``time.perf_counter()`` then."""
        return self._seen

    def gains(self) -> dict[Loop, float]:
        """Smoothed gains of the audible deck's voices as of the last block."""
        deck = self._cur
        if deck is None:
            return {}
        return {loop: float(g) for loop, g in zip(list(deck.loops), deck.gain.tolist()) if loop is not None}

    def targets(self) -> dict[Loop, float]:
        """Target gains of the newest deck (the one set_voices last posted or updated)."""
        with self._lock:
            mail = self._mail
            deck = mail[1] if mail is not None and mail[1] is not self._old else self._cur
            if deck is None:
                return {}
            return {loop: float(t) for loop, t in zip(deck.loops, deck.target.tolist()) if loop is not None and t > 0}

    def current_loop(self) -> Loop | None:
        """The loudest voice of the audible deck (for a waveform display)."""
        gains = self.gains()
        return max(gains, key=gains.__getitem__) if gains else None

    # ------------------------------------------------------------------ audio side
    def process(self, out: np.ndarray) -> None:
        """Fill ``out`` (``[frames, channels]`` or interleaved 1-D float32) with the mix."""
        flat = out.reshape(-1)  # a view: sounddevice hands C-contiguous buffers
        frames = flat.shape[0] // self.channels
        mail = self._mail
        if mail is not None and mail[0] != self._mail_taken:
            # A newer scene replaces a pending one that never started; the
            # control side still holds it (self._decks), so nothing is freed here.
            self._mail_taken, self._pending, self._pending_now = mail[0], mail[1], mail[2]
        seq = self._seq  # read before the targets: targets are at least this new
        if seq != self._seen[0]:
            self._seen = (seq, self.blocks, time.perf_counter())
        sync = self.sync
        if sync is not None:  # keep the audible loops on the beat clock's grid
            for deck in (self._cur, self._old):
                if deck is not None:
                    deck.pos = sync.position(deck.frames, deck.pos, 0)
        done = 0
        while done < frames:
            n = min(frames - done, self.max_block)
            self._offset = done
            self._render(flat[done * self.channels:(done + n) * self.channels], n)
            done += n
        self.blocks += 1
        self.frames_out += frames

    def _render(self, flat: np.ndarray, frames: int) -> None:
        ch = self.channels
        target = self._master_target
        if self._master == 0.0 and target == 0.0 and not self._playing:
            flat.fill(0.0)  # paused: positions stay where they are (a muted loop keeps moving)
            return
        for deck in (self._cur, self._old, self._pending):
            if deck is not None:
                np.copyto(deck.snap, deck.target)  # NB: one C call, see set_voices
        heard = False
        done = 0
        while done < frames:
            n = frames - done
            if self._pending is not None and self._old is None:
                cur, sync = self._cur, self.sync
                edge = 0 if cur is None else (
                    sync.edge(self._offset + done) if sync is not None else (cur.frames - cur.pos) % cur.frames)
                if self._pending_now or edge == 0:
                    self._old, self._cur, self._pending = cur, self._pending, None
                    self._fade_pos = 0
                    if sync is not None:  # a new loop starts where the beat clock is now
                        self._cur.pos = sync.position(self._cur.frames, None, self._offset + done)
                    if cur is not None:  # the equal-power fade alone shapes a swap
                        np.copyto(self._cur.gain, self._cur.snap)
                else:
                    n = min(n, edge)  # stop at the boundary (the loop's end, or the next bar line)
            dst = flat[done * ch:(done + n) * ch]
            if self._old is None:
                heard |= self._mix_deck(self._cur, dst, n)
            else:
                n = min(n, self.fade_frames - self._fade_pos)
                dst = flat[done * ch:(done + n) * ch]
                heard |= self._crossfade(dst, n)
            done += n
        if not heard:
            flat.fill(0.0)
            self.underruns += 1
            self.underrun_frames += frames
        if self._master != target:
            d = self._master - target
            ramp = self._ramp[:frames * ch]
            np.multiply(self._decay[:frames * ch], d, out=ramp)
            ramp += target
            np.multiply(flat, ramp, out=flat)
            end = target + d * float(self._decay64[frames - 1])
            self._master = target if abs(end - target) < SETTLED else end

    def _crossfade(self, dst: np.ndarray, n: int) -> bool:
        ch, fp = self.channels, self._fade_pos
        a, b = self._mixes[0][:n * ch], self._mixes[1][:n * ch]
        heard = self._mix_deck(self._cur, a, n)
        heard |= self._mix_deck(self._old, b, n)
        np.multiply(a, self._fade_in[fp * ch:(fp + n) * ch], out=dst)
        tmp = self._tmp[:n * ch]
        np.multiply(b, self._fade_out[fp * ch:(fp + n) * ch], out=tmp)
        dst += tmp
        self._fade_pos = fp + n
        if self._fade_pos >= self.fade_frames:
            self._old = None  # control's reap moves it to the graveyard
        return heard

    def _mix_deck(self, deck: Deck | None, dst: np.ndarray, n: int) -> bool:
        """Add the deck's voices into ``dst`` (zeroed first); False if it has no loop."""
        dst.fill(0.0)
        return deck is not None and deck.mix_into(dst, n, self.channels, self._tables)
