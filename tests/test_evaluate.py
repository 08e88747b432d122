"""Evaluation maths: exact AUC, cutoff interpolation, smoothness, distances."""

from __future__ import annotations

import math

import numpy as np
import pytest

from steerbridge.engine.evaluation.metrics import (Curve, clap_scorer, curve_auc, direction_curve,
                                                   preservation_distance, smoothness)
from steerbridge.engine.runtime.errors import EngineError

SR = 16000


def _tone(freq: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(SR) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_preservation_distance_is_zero_for_identical_and_grows_with_change():
    a = _tone(440)
    assert preservation_distance(a, a.copy(), SR) == 0.0
    near, far = preservation_distance(_tone(466), a, SR), preservation_distance(_tone(1760), a, SR)
    assert 0 < near < far
    assert preservation_distance(np.stack([a, a]), a, SR) == pytest.approx(0.0, abs=1e-9)  # stereo -> mono mix


def test_direction_curve_sorts_by_abs_alpha_and_sign_corrects():
    c = direction_curve([-2.0, -1.0], scores=[90.0, 95.0], distances=[0.4, 0.2], baseline=100.0, scale=10.0,
                        direction=-1)
    assert c == Curve(alphas=(0.0, 1.0, 2.0), distance=(0.0, 0.2, 0.4), delta=(0.0, 0.5, 1.0))
    with pytest.raises(EngineError, match="sign"):
        direction_curve([1.0], scores=[1.0], distances=[1.0], baseline=0.0, scale=1.0, direction=-1)


def test_auc_is_the_trapezoid_up_to_an_interpolated_cutoff():
    c = Curve(alphas=(0, 1, 2, 3), distance=(0.0, 1.0, 2.0, 4.0), delta=(0.0, 1.0, 2.0, 4.0))
    assert curve_auc(c, cutoff=2.0) == pytest.approx(2.0)  # triangle 0..2 under y = x
    assert curve_auc(c, cutoff=3.0) == pytest.approx(4.5)  # boundary point (3, 3) interpolated
    assert curve_auc(c, cutoff=10.0) == pytest.approx(8.0)  # curve ends before the cutoff: area so far
    wrong_way = Curve(alphas=(0, 1), distance=(0.0, 1.0), delta=(0.0, -1.0))
    assert curve_auc(wrong_way, cutoff=1.0) == pytest.approx(-0.5)  # overshooting the wrong way costs
    with pytest.raises(EngineError, match="cutoff"):
        curve_auc(c, cutoff=0.0)


def test_smoothness_is_std_of_normalised_gaps():
    even = Curve(alphas=(0, 1, 2, 3), distance=(0, 1, 2, 3), delta=(0.0, 1.0, 2.0, 3.0))
    assert smoothness(even) == pytest.approx(0.0, abs=1e-15)
    jump = Curve(alphas=(0, 1, 2), distance=(0, 1, 2), delta=(0.0, 0.0, 2.0))
    assert smoothness(jump) == pytest.approx(np.std([0.0, 1.0]))
    assert math.isnan(smoothness(jump, cutoff=1.5))  # inside the cutoff it never moved forward
    assert math.isnan(smoothness(Curve((0, 1, 2), (0, 1, 2), (0.0, -1.0, -2.0))))


def test_clap_scorer_refuses_without_a_local_checkpoint(tmp_path):
    with pytest.raises(EngineError, match="local LAION-CLAP checkpoint"):
        clap_scorer(None, text="happy music")
    with pytest.raises(EngineError, match="does not exist"):
        clap_scorer(tmp_path / "nope.pt", text="happy music")
