"""The session's mixer thread: newest control state -> the player's voice gains.

A knob move only wakes the ``steerbridge-mixer`` thread (:meth:`Mixer.wake`);
the thread reads the newest snapshot, so a storm of moves costs one update,
and asks the :class:`~steerbridge.bridge.live.voicebank.VoiceBank` which loops
of the newest scene to hear (equal-power between the pre-rendered stops
around the knobs' values), then hands the gains to the
:class:`~steerbridge.bridge.audio.player.LoopPlayer`. Loop delivery calls
:meth:`Mixer.update` itself (with the swap mode of a new scene).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from steerbridge.bridge.audio.player import LoopPlayer
from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.live.voicebank import VoiceBank

__all__ = ["Mixer"]


class Mixer:
    """Apply the newest state's gains to ``player``, on its own thread; ``on_error(message)`` on a bad mix."""

    def __init__(self, state: ControlState, bank: VoiceBank, player: LoopPlayer, *,
                 on_error: Callable[[str], None]) -> None:
        self.state, self.bank, self.player, self._on_error = state, bank, player, on_error
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="steerbridge-mixer", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def close(self, timeout: float = 2.0) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=timeout)

    def update(self, *, swap: str = "boundary") -> None:
        """Set the player's gains from the newest bank and state (any thread)."""
        # Bank and snapshot are read under the lock, so whichever thread (mixer
        # or loop delivery) applies gains last applies the newest scene and
        # state; an older scene applied late would start that scene again.
        with self._lock:
            bank = self.bank.latest
            if bank is None:
                return
            snap = self.state.snapshot()
            gains = self.bank.gains(bank, snap.preset.knobs, snap.values(), snap.alphas(), snap.recent())
            if gains:
                self.player.set_voices(gains, scene=bank.scene, swap="now" if swap == "now" else "boundary")

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stopping:
                return
            self._wake.clear()  # cleared before reading the state: a change after this wakes us again
            try:
                self.update()
            except ValueError as exc:  # e.g. a preset with more knobs than the player has slots
                self._on_error(str(exc))
