"""VoiceBank: the rendered loops of each scene, and which of them to hear.

The scheduler delivers loops (:class:`steerbridge.bridge.live.scheduler.LoopReady`) one by one:
grid points (a stop index per knob) and exact renders (the knob values of the
moment). The bank resamples each to the device rate once (soxr, on the
delivering thread, never in the audio callback) and answers one question for
the player: *for these knob values, which loops at which gains?*

1. an exact render at exactly these alphas: that loop alone;
2. else the corners of the stop-grid cell around the values with equal-power
   gains (:func:`steerbridge.bridge.audio.loops.grid_gains`); corners not rendered yet are left
   out and the rest rescaled to unit power;
3. else the nearest loop there is (in knob-position space), at gain 1.

The newest scene is the one of the newest delivered loop: the scheduler only
delivers loops of its current scene, so a new prompt takes over when its
first loop lands (the old one keeps playing until then).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from steerbridge.bridge.audio.loops import Loop, grid_gains, prepare_loop
from steerbridge.bridge.live.scheduler import LoopReady
from steerbridge.bridge.presets.model import Knob

__all__ = ["SceneBank", "VoiceBank"]

_SAME_ALPHA = 1e-9


@dataclass
class SceneBank:
    scene: Hashable
    knob_names: tuple[str, ...]
    stops: dict[tuple[int, ...], Loop] = field(default_factory=dict)
    exact: OrderedDict[tuple[float, ...], Loop] = field(default_factory=OrderedDict)  # oldest first

    def loops(self) -> list[Loop]:
        return [*self.stops.values(), *self.exact.values()]


class VoiceBank:
    """Thread-safe: loops are added on the scheduler's thread, gains asked on control threads.

    ``keep_exact``: exact renders kept per scene (a knob sweep makes many);
    ``keep_scenes``: scenes kept (the playing one and the one before it).
    """

    def __init__(self, *, rate: int, channels: int = 2, keep_exact: int = 8, keep_scenes: int = 2) -> None:
        self.rate, self.channels = rate, channels
        self._keep_exact, self._keep_scenes = keep_exact, keep_scenes
        self._scenes: OrderedDict[Hashable, SceneBank] = OrderedDict()
        self._lock = threading.Lock()
        # Set by a beat clock (bridge/live/linkplay.py): trims or pads each loop to its bars.
        self.fit: Callable[[Loop], Loop] | None = None

    @property
    def latest(self) -> SceneBank | None:
        with self._lock:
            return next(reversed(self._scenes.values()), None)

    def add(self, ready: LoopReady) -> tuple[SceneBank, Loop, bool]:
        """Resample and store a delivered loop; returns (its scene, the loop, new scene?)."""
        names = tuple(ready.alphas)
        alphas = tuple(float(ready.alphas[n]) for n in names)
        loop = prepare_loop(ready.audio, source_rate=ready.sample_rate, rate=self.rate, channels=self.channels,
                            key=ready.stops if ready.stops is not None else alphas)
        fit = self.fit
        if fit is not None:
            loop = fit(loop)
        with self._lock:
            bank = self._scenes.get(ready.scene)
            is_new = bank is None or bank.knob_names != names
            if is_new:
                bank = SceneBank(ready.scene, names)
                self._scenes.pop(ready.scene, None)
            self._scenes[ready.scene] = bank  # (re)inserted last: the newest scene
            while len(self._scenes) > self._keep_scenes:
                self._scenes.popitem(last=False)
            if ready.stops is not None:
                bank.stops[ready.stops] = loop
            if ready.exact:
                bank.exact.pop(alphas, None)
                bank.exact[alphas] = loop
                while len(bank.exact) > self._keep_exact:
                    bank.exact.popitem(last=False)
        return bank, loop, is_new

    def gains(self, bank: SceneBank, knobs: Sequence[Knob], values: Mapping[str, float],
              alphas: Mapping[str, float]) -> dict[Loop, float]:
        """Loops and gains for knob ``values`` (0..1) / ``alphas`` (see the module docstring)."""
        if tuple(k.name for k in knobs) != bank.knob_names:
            return {}  # another preset's knobs: nothing here maps onto them
        with self._lock:
            stops, exact = dict(bank.stops), list(bank.exact.items())
        want = tuple(float(alphas[k.name]) for k in knobs)
        for key, loop in reversed(exact):
            if all(abs(a - b) <= _SAME_ALPHA * max(1.0, abs(b)) for a, b in zip(key, want)):
                return {loop: 1.0}
        corners = grid_gains([k.bracket(values[k.name]) for k in knobs])
        have = {stops[c]: g for c, g in corners.items() if c in stops}
        if have:
            scale = 1.0 / math.sqrt(sum(g * g for g in have.values()))
            return {loop: g * scale for loop, g in have.items()}
        nearest = self._nearest(knobs, values, stops, exact)
        return {nearest: 1.0} if nearest is not None else {}

    @staticmethod
    def _nearest(knobs: Sequence[Knob], values: Mapping[str, float], stops: dict[tuple[int, ...], Loop],
                 exact: list[tuple[tuple[float, ...], Loop]]) -> Loop | None:
        want = [values[k.name] for k in knobs]
        candidates: list[tuple[float, Loop]] = []
        for corner, loop in stops.items():
            pos = [i / (k.stops - 1) for k, i in zip(knobs, corner)]
            candidates.append((sum((p - w) ** 2 for p, w in zip(pos, want)), loop))
        for key, loop in exact:
            pos = [k.value_for(a) for k, a in zip(knobs, key)]
            candidates.append((sum((p - w) ** 2 for p, w in zip(pos, want)), loop))
        return min(candidates, key=lambda c: c[0])[1] if candidates else None
