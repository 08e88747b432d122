"""Activation patching finds the one layer whose cross-attention was made to matter."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from steerbridge.engine.evaluation.concepts import get_concept
from steerbridge.engine.localisation.patching import activation_patching, context_patches, functional_layers
from steerbridge.engine.runtime.render import RenderRequest, SteerableModel
from steerbridge.engine.runtime.source import TINY_CONFIG, build_random

ONLY = 2  # the layer whose cross-attention is left intact


@pytest.fixture(scope="module")
def one_layer_model() -> SteerableModel:
    """Tiny model with every other layer's cross-attention output projection zeroed.

    Text then reaches the audio only through layer ONLY's cross-attention, so patching
    that layer must turn the source run into the target run exactly, and patching any
    other layer must change nothing at all.
    """
    model = SteerableModel(build_random(json.loads(TINY_CONFIG.read_text()), seed=0, name="tiny-one-layer"))
    with torch.no_grad():
        for l, block in enumerate(model.adapter._block_objs):
            if l != ONLY:
                block.cross_attn.to_out.weight.zero_()
    return model


def test_patching_finds_the_layer_that_carries_the_text(one_layer_model):
    brightness = get_concept("brightness")
    res = activation_patching(one_layer_model, concept="brightness",
                              pairs=[("bright piano loop", "dark piano loop")], score=brightness.score,
                              seconds=1.0, steps=3, cfg_scale=6.0)
    assert res.target_score != res.source_score
    assert res.impact[ONLY] == pytest.approx(1.0, abs=1e-9)  # patched run == target run
    assert [res.impact[l] for l in range(4) if l != ONLY] == [0.0, 0.0, 0.0]  # bitwise the source run
    assert res.functional == (ONLY,)
    assert res.layers == (0, 1, 2, 3)


def test_patch_only_touches_conditional_rows_and_is_removed(one_layer_model):
    adapter = one_layer_model.adapter
    originals = [b.cross_attn for b in adapter._block_objs]
    req = RenderRequest(prompt="dark piano loop", seed=3, seconds=1.0, steps=3)
    plain = one_layer_model.render(req).audio
    with context_patches(adapter, [ONLY]) as patches:
        assert adapter._block_objs[ONLY].cross_attn is patches[ONLY]
        patches[ONLY].capture = True
        one_layer_model.render(req)
        captured = patches[ONLY].captured
        assert captured is not None and captured.shape[0] == 1  # the conditional row only
        patches[ONLY].capture = False
        patches[ONLY].replacement = captured  # its own context: nothing may change
        same = one_layer_model.render(req).audio
    assert np.array_equal(plain, same)
    assert [b.cross_attn for b in adapter._block_objs] == originals


def test_functional_layers_picks_the_narrowest_consecutive_run():
    assert functional_layers([0.0, 0.1, 0.9, 0.05]) == (2,)
    assert functional_layers([0.0, 0.45, 0.45, 0.1]) == (1, 2)
    assert functional_layers([0.3, -2.0, 0.3, 0.3], max_width=2) == (2, 3)
    assert functional_layers([math.nan, 0.0, -1.0], layers=[4, 5, 6]) == ()
    assert functional_layers([math.nan, 0.0, 0.2], layers=[4, 5, 6]) == (6,)
