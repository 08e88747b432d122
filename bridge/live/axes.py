"""Alpha points along each knob's axis: what to pre-render and what to mix, both linear in the knob count.

A *point* is one alpha per knob (preset order), rounded so that the same
render planned twice, or delivered and looked up, is the same key. Around the
current point P the pre-render plan holds, per knob, the stops along that
knob's axis with every other knob at P (never the grid of all combinations,
which grows as ``stops ** K`` and whose cell has ``2 ** K`` corners):

1. P itself (the exact render);
2. each knob's neighbouring stops (the two around its value, or the two beside
   the stop it sits on), the most recently moved knob first: after these,
   every knob can move either way and be heard at once;
3. the rest of each axis, nearest stops first (``depth="full"``, at most
   ``limit``).

So a plan has at most ``1 + sum(stops)`` points. A tempo knob (``target =
"bpm"``) has no axis here: the tempo is part of the scene (a move renders the
loop again at the new tempo, as a new prompt does), and two loops at two
tempos cannot be crossfaded into a third, so its stops are never rendered.

The mix (:func:`axis_gains`) stands at an *anchor* (an exact render, newest first) and crossfades only
along the :data:`MAX_AXES` knobs moved most recently; knobs moved earlier sit
at the anchor's alpha until the exact render for the new point lands. At most
``2 * MAX_AXES`` voices, whatever the preset.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from steerbridge.bridge.audio.loops import equal_power
from steerbridge.bridge.presets.model import Knob

__all__ = ["MAX_AXES", "Point", "AxisPoint", "point", "stop_index", "neighbours", "axis_plan", "axis_gains",
           "grid_stops", "stop_table"]

MAX_AXES = 3  # knobs interpolated at once: voices mixed <= 2 * MAX_AXES
_DIGITS = 9  # alphas are rounded to this many decimals in keys (curves make ~1e-16 noise)

Point = tuple[float, ...]


def point(alphas: Sequence[float]) -> Point:
    return tuple(round(float(a), _DIGITS) for a in alphas)


@functools.lru_cache(maxsize=1024)
def _stops(knob: Knob) -> Point:
    return point(knob.stop_alphas())


def stop_index(knob: Knob, alpha: float) -> int | None:
    """Which of the knob's stops ``alpha`` is (None: between stops)."""
    stops = _stops(knob)
    a = round(float(alpha), _DIGITS)
    return stops.index(a) if a in stops else None


def grid_stops(knobs: Sequence[Knob], p: Point) -> tuple[int, ...] | None:
    """The stop index of every knob when ``p`` is a point of the stop grid, else None."""
    out = []
    for knob, a in zip(knobs, p):
        i = stop_index(knob, a)
        if i is None:
            return None
        out.append(i)
    return tuple(out)


def neighbours(knob: Knob, value01: float) -> tuple[int, ...]:
    """The stops a move either way needs: the two around ``value01``, or the two beside the stop it is on."""
    pos = min(1.0, max(0.0, float(value01))) * (knob.stops - 1)
    on = round(pos)
    if abs(pos - on) < 1e-9:
        return tuple(i for i in (on - 1, on + 1) if 0 <= i < knob.stops)
    low = min(int(pos), knob.stops - 2)
    return low, low + 1


@dataclass(frozen=True)
class AxisPoint:
    alphas: Point
    axis: int | None  # the knob whose stop this is (index in preset order); None: the exact point
    stop: int | None


def axis_plan(knobs: Sequence[Knob], values: Sequence[float], alphas: Sequence[float], *,
              order: Sequence[int] = (), depth: str = "full", limit: int = 64) -> list[AxisPoint]:
    """The points to render around ``alphas``, in order (see the module docstring).

    ``order``: knob indices, most recently moved first (others follow in preset
    order); ``depth``: ``"none"`` (the exact point), ``"near"`` (+ neighbours),
    ``"full"`` (+ up to ``limit`` further stops along the axes).
    """
    base = point(alphas)
    plan, seen = [AxisPoint(base, None, None)], {base}
    if depth == "none" or not knobs:
        return plan
    ranked = [i for i in dict.fromkeys([*order, *range(len(knobs))]) if not knobs[i].is_tempo]

    def add(i: int, s: int) -> None:
        p = base[:i] + (_stops(knobs[i])[s],) + base[i + 1:]
        if p not in seen:
            seen.add(p)
            plan.append(AxisPoint(p, i, s))

    for i in ranked:
        for s in neighbours(knobs[i], values[i]):
            add(i, s)
    if depth == "full":
        rest = sorted((abs(s / (knobs[i].stops - 1) - values[i]), rank, i, s)
                      for rank, i in enumerate(ranked) for s in range(knobs[i].stops))
        before = len(plan)
        for _, _, i, s in rest:
            if len(plan) - before >= limit:
                break
            add(i, s)
    return plan


def stop_table(knobs: Sequence[Knob]) -> tuple[Point, ...]:
    """Each knob's stop alphas as points use them (compute once per preset, pass to :func:`axis_gains`)."""
    return tuple(_stops(k) for k in knobs)


def axis_gains(points: Mapping[Point, object], knobs: Sequence[Knob], values: Sequence[float], want: Point,
               anchor: Point, order: Sequence[int], stops: Sequence[Point]) -> tuple[dict[object, float], int]:
    """Voices and gains for knob ``values`` (alphas ``want``) standing at ``anchor``, and how many axes it missed.

    Crossfades (equal power) along the :data:`MAX_AXES` knobs in ``order`` whose
    alpha differs from the anchor's; each axis gets a share of the power in
    proportion to how far its knob is from the anchor. ``points`` maps rendered
    points to loops, ``stops`` is :func:`stop_table` of ``knobs``. An axis with
    no loop around this anchor is left out and counted as missed (the caller
    prefers an anchor that misses none).
    """
    moved = [i for i in order if want[i] != anchor[i]][:MAX_AXES]
    if not moved:
        loop = points.get(anchor)
        return ({loop: 1.0} if loop is not None else {}), 0
    axes: list[tuple[float, dict[object, float]]] = []
    for i in moved:
        knob = knobs[i]
        low, high, w = knob.bracket(values[i])
        pair: dict[object, float] = {}
        for s, g in zip((low, high), equal_power(w)):
            loop = points.get(anchor[:i] + (stops[i][s],) + anchor[i + 1:]) if g > 0.0 else None
            if loop is not None:
                pair[loop] = g
        if pair:
            norm = math.sqrt(sum(g * g for g in pair.values()))
            axes.append((abs(values[i] - knob.value_for(anchor[i])), {loop: g / norm for loop, g in pair.items()}))
    total = sum(d for d, _ in axes)
    power: dict[object, float] = {}
    for d, pair in axes:
        share = d / total if total > 0 else 1.0 / len(axes)
        for loop, g in pair.items():
            power[loop] = power.get(loop, 0.0) + share * g * g  # the same loop on two axes: powers add
    return {loop: math.sqrt(p) for loop, p in power.items() if p > 0.0}, len(moved) - len(axes)
