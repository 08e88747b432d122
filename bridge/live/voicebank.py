"""VoiceBank: the rendered loops of each scene, and which of them to hear.

The scheduler delivers loops (:class:`steerbridge.bridge.live.scheduler.LoopReady`) one by one:
exact renders (the knob values of the moment) and stops along each knob's axis
around them (:mod:`steerbridge.bridge.live.axes`). The bank resamples each to
the device rate once (soxr, on the delivering thread, never in the audio
callback), files it under its alpha point, and answers one question for the
player: *for these knob values, which loops at which gains?*

1. a loop rendered at exactly these alphas: that loop alone;
2. else, standing at the newest exact render that can serve the move, an
   equal-power crossfade along the (at most :data:`~steerbridge.bridge.live.axes.MAX_AXES`)
   most recently moved knobs (:func:`steerbridge.bridge.live.axes.axis_gains`);
   knobs moved before those sit at that render's alpha until a newer exact
   render lands; when no exact render has stops for a moved knob yet, the
   newest exact render alone;
3. with no exact render at all (a scene's first stops), the same crossfade
   standing at the nearest loop there is (in knob-position space).

So at most ``2 * MAX_AXES`` voices are asked for, whatever the knob count. The
newest scene is the one of the newest delivered loop: the scheduler only
delivers loops of its current scene, so a new prompt takes over when its
first loop lands (the old one keeps playing until then).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from steerbridge.bridge.audio.loops import Loop, prepare_loop
from steerbridge.bridge.live.axes import Point, axis_gains, point, stop_index, stop_table
from steerbridge.bridge.live.scheduler import LoopReady
from steerbridge.bridge.presets.model import Knob

__all__ = ["SceneBank", "VoiceBank"]

_ANCHORS = 3  # exact renders tried as the point to crossfade from: bounds the work per knob move


@dataclass
class SceneBank:
    scene: Hashable
    knob_names: tuple[str, ...]
    points: OrderedDict[Point, Loop] = field(default_factory=OrderedDict)  # every loop by alpha point, LRU
    exact: OrderedDict[Point, None] = field(default_factory=OrderedDict)  # exact renders' points, oldest first
    stop_table: tuple[Point, ...] | None = None  # per knob, its stops' alphas (made on first use)

    def loops(self) -> list[Loop]:
        return list(self.points.values())


class VoiceBank:
    """Thread-safe: loops are added on the scheduler's thread, gains asked on control threads.

    ``keep_points``: loops kept per scene (the least recently delivered go first);
    ``keep_exact``: exact renders remembered as anchors per scene;
    ``keep_scenes``: scenes kept (the playing one and the one before it).
    """

    def __init__(self, *, rate: int, channels: int = 2, keep_points: int = 96, keep_exact: int = 8,
                 keep_scenes: int = 2) -> None:
        self.rate, self.channels = rate, channels
        self._keep_points, self._keep_exact, self._keep_scenes = keep_points, keep_exact, keep_scenes
        self._scenes: OrderedDict[Hashable, SceneBank] = OrderedDict()
        self._lock = threading.Lock()
        # Set by a beat clock (bridge/live/linkplay.py): trims or pads each loop to its bars.
        self.fit: Callable[[Loop], Loop] | None = None

    @property
    def latest(self) -> SceneBank | None:
        with self._lock:
            return next(reversed(self._scenes.values()), None)

    def add(self, ready: LoopReady, knobs: Sequence[Knob] = ()) -> tuple[SceneBank, Loop, bool]:
        """Resample and store a delivered loop; returns (its scene, the loop, new scene?).

        ``knobs`` (the preset's, in order) let the loop's key name its stops:
        per knob the stop index where the alpha is a stop, else the alpha.
        """
        names = tuple(ready.alphas)
        at = point(ready.alphas[n] for n in names)
        by_name = {k.name: k for k in knobs}
        key = tuple(_key_item(by_name.get(n), float(ready.alphas[n])) for n in names)
        loop = prepare_loop(ready.audio, source_rate=ready.sample_rate, rate=self.rate, channels=self.channels,
                            key=key)
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
            bank.points.pop(at, None)
            bank.points[at] = loop
            while len(bank.points) > self._keep_points:
                bank.points.popitem(last=False)  # the player keeps what it plays until its graveyard lets go
            if ready.exact:
                bank.exact.pop(at, None)
                bank.exact[at] = None
                while len(bank.exact) > self._keep_exact:
                    bank.exact.popitem(last=False)
        return bank, loop, is_new

    def gains(self, bank: SceneBank, knobs: Sequence[Knob], values: Mapping[str, float],
              alphas: Mapping[str, float], recent: Sequence[str] = ()) -> dict[Loop, float]:
        """Loops and gains for knob ``values`` (0..1) / ``alphas`` (see the module docstring).

        ``recent``: knob names, the most recently moved first (``StateSnapshot.recent()``).
        """
        names = tuple(k.name for k in knobs)
        if names != bank.knob_names:
            return {}  # another preset's knobs: nothing here maps onto them
        want = point(alphas[n] for n in names)
        vals = [float(values[n]) for n in names]
        index = {n: i for i, n in enumerate(names)}
        order = [index[n] for n in recent if n in index] or range(len(names))
        if bank.stop_table is None or len(bank.stop_table) != len(knobs):
            bank.stop_table = stop_table(knobs)  # once per scene: hashing Knobs per call costs more than the mix
        with self._lock:
            points = bank.points
            loop = points.get(want)
            if loop is not None:
                return {loop: 1.0}
            # The newest few exact renders, each looked at once: the first that serves every moved axis
            # wins, else the one that serves the most, else the newest exact render alone.
            best: tuple[dict[Loop, float], int] | None = None
            for anchor in [a for a in reversed(bank.exact) if a in points][:_ANCHORS]:
                found, missed = axis_gains(points, knobs, vals, want, anchor, order, bank.stop_table)
                if found and missed == 0:
                    return found
                if found and (best is None or missed < best[1]):
                    best = (found, missed)
            if best is not None:
                return best[0]
            newest = next((points[a] for a in reversed(bank.exact) if a in points), None)
            if newest is not None:
                return {newest: 1.0}
            # No exact render at all (a scene's first stops): stand at the nearest loop instead (rare).
            near = _nearest(knobs, vals, points)
            if near is None:
                return {}
            found, _ = axis_gains(points, knobs, vals, want, near, order, bank.stop_table)
            return found or {points[near]: 1.0}


def _key_item(knob: Knob | None, alpha: float) -> int | float:
    i = stop_index(knob, alpha) if knob is not None else None
    return alpha if i is None else i


def _nearest(knobs: Sequence[Knob], values: Sequence[float], points: Mapping[Point, Loop]) -> Point | None:
    best, best_d = None, math.inf
    for p in points:
        d = sum((k.value_for(a) - v) ** 2 for k, a, v in zip(knobs, p, values))
        if d < best_d:
            best, best_d = p, d
    return best
