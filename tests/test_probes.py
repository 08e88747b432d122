"""Probes: cross-validated accuracy finds the layer where a signal was planted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steerbridge.engine.extraction.caa import collect_site_means
from steerbridge.engine.localisation.probes import cv_accuracy, probe_activations
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.steering import Steering, SteeringTerm
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta


def test_planted_signal_at_one_layer_is_the_top_layer():
    gen = torch.Generator().manual_seed(0)
    prompts, steps, d = 10, 3, 16
    pos = {l: torch.randn(prompts, steps, d, generator=gen) for l in range(4)}
    neg = {l: torch.randn(prompts, steps, d, generator=gen) for l in range(4)}
    pos[2][..., 5] += 6.0  # planted: only layer 2 separates the classes
    res = probe_activations(pos, neg, concept="planted", folds=5, top_k=1)
    assert res.accuracy[2] == 1.0
    assert max(res.accuracy[l] for l in (0, 1, 3)) < 0.8
    assert res.top == (2,)
    assert res.samples == 20
    grouped = probe_activations(pos, neg, concept="planted", per_step=True, top_k=1)
    assert grouped.top == (2,) and grouped.samples == 60


def test_cv_accuracy_is_exact_on_separable_and_chance_on_identical_data():
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0], [11.0], [12.0], [13.0]])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert cv_accuracy(x, y, folds=4) == 1.0
    same = torch.zeros(8, 3)
    assert cv_accuracy(same, y, folds=4) == 0.5  # one prediction for both classes in every fold


def test_too_few_prompts_is_a_clear_error():
    with pytest.raises(EngineError, match="at least 2 prompts per class"):
        cv_accuracy(torch.zeros(3, 2), np.array([0, 1, 1]))


def test_probe_on_tiny_model_reads_a_planted_steering_offset(tiny):
    """Same prompts for both classes; the positive renders get an offset at layer 1's cross-attention."""
    gen = torch.Generator().manual_seed(1)
    d = tiny.site_dim("cross_attn")
    meta = VectorMeta(concept="planted", site="cross_attn", method="test", fingerprint=tiny.fingerprint)
    vec = ConceptVector({1: torch.randn(d, generator=gen)}, meta)
    prompts = ["piano loop", "pluck melody", "synth pad tune", "bell song"]
    kw = dict(site="cross_attn", layers=[0, 1, 2, 3], seed=0, seconds=1.0, steps=3, cfg_scale=6.0)
    pos, _ = collect_site_means(tiny, prompts, steering=Steering(terms=(SteeringTerm(vec, alpha=4.0),)), **kw)
    neg, _ = collect_site_means(tiny, prompts, **kw)
    res = probe_activations(pos, neg, concept="planted", folds=4, top_k=1)
    assert res.accuracy[0] == 0.5  # before the plant: pos and neg activations are identical
    assert res.accuracy[1] == 1.0
    assert res.top == (1,)
