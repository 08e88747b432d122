"""Axis plans: linear in the knob count, the moved knob first, neighbours before the rest."""

from __future__ import annotations

from steerbridge.bridge.live.axes import axis_plan, grid_stops, neighbours, point
from steerbridge.bridge.presets.model import Knob


def knob(i: int, stops: int = 5) -> Knob:
    return Knob(name=f"k{i}", vector="v.safetensors", alpha_min=-1.0, alpha_max=1.0, stops=stops)


def test_neighbours_around_a_value_or_beside_the_stop_it_sits_on():
    k = knob(0)  # stops at 0, .25, .5, .75, 1
    assert neighbours(k, 0.3) == (1, 2)
    assert neighbours(k, 0.5) == (1, 3)
    assert neighbours(k, 0.0) == (1,) and neighbours(k, 1.0) == (3,)


def test_plan_size_is_linear_in_the_knob_count():
    for count in (2, 6, 12, 16):
        knobs = [knob(i) for i in range(count)]
        values = [0.3] * count  # between stops: two neighbours each
        alphas = [k.alpha_for(v) for k, v in zip(knobs, values)]
        near = axis_plan(knobs, values, alphas, depth="near")
        full = axis_plan(knobs, values, alphas, depth="full", limit=10_000)
        assert len(near) == 1 + 2 * count
        assert len(full) == 1 + 5 * count  # every stop of every axis, never 5 ** count grid points
        assert all(sum(a != b for a, b in zip(p.alphas, point(alphas))) == 1 for p in full[1:])


def test_the_most_recently_moved_knob_comes_first_and_limit_bounds_the_rest():
    knobs = [knob(i) for i in range(4)]
    values = [0.5] * 4
    alphas = [0.0] * 4
    plan = axis_plan(knobs, values, alphas, order=[2], depth="full", limit=3)
    assert [p.axis for p in plan[1:3]] == [2, 2] and [p.stop for p in plan[1:3]] == [1, 3]
    assert len(plan) == 1 + 2 * 4 + 3
    assert grid_stops(knobs, plan[1].alphas) == (2, 2, 1, 2)
    assert grid_stops(knobs, point([0.1, 0, 0, 0])) is None


def test_a_tempo_knob_has_no_axis_its_moves_are_new_scenes():
    """Two loops at two tempos cannot be crossfaded into a third: a tempo knob's stops are never planned."""
    tempo = Knob(name="tempo", target="bpm", alpha_min=80.0, alpha_max=160.0, stops=5)
    knobs = [knob(0), tempo, knob(2)]
    values = [0.3, 0.4375, 0.5]
    alphas = [k.alpha_for(v) for k, v in zip(knobs, values)]
    plan = axis_plan(knobs, values, alphas, order=[1, 0], depth="full", limit=10_000)
    assert len(plan) == 1 + 5 + 4 and 1 not in {p.axis for p in plan}  # k2 sits on a stop: the exact point
    assert all(p.alphas[1] == 115.0 for p in plan) and plan[1].axis == 0
