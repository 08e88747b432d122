"""Prompt-following measurement: one-word caption pairs on held-out combinations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from steerbridge.engine.demo.captions import HELD_OUT, SYNONYMS
from steerbridge.engine.demo.data import CONTRASTS
from steerbridge.engine.demo.follow import caption_pairs, prompt_following, render_audio
from steerbridge.engine.demo.model import build_model


@pytest.mark.parametrize("attribute", list(CONTRASTS))
def test_pairs_differ_in_exactly_the_attribute_word(attribute: str) -> None:
    pos, neg, _ = CONTRASTS[attribute]
    pairs = caption_pairs(attribute, n=12, seed=3)
    assert pairs == caption_pairs(attribute, n=12, seed=3)  # deterministic
    for p, n in pairs:
        a, b = p.split(), n.split()
        assert len(a) == len(b)
        diff = [(x, y) for x, y in zip(a, b) if x != y]
        assert len(diff) == 1, (p, n)
        assert diff[0][0] in SYNONYMS[(attribute, pos)] and diff[0][1] in SYNONYMS[(attribute, neg)]


def test_pairs_use_held_out_instruments() -> None:
    instruments = {inst for inst, _, _ in HELD_OUT}
    for p, _ in caption_pairs("brightness", n=8):
        assert any(w in p for inst in instruments for w in SYNONYMS[("instrument", inst)])


@pytest.mark.slow
def test_prompt_following_runs_on_an_untrained_model() -> None:
    torch.manual_seed(0)
    model = build_model().eval()
    audio = render_audio(model, ["bright piano", "bright piano"], [5, 5], steps=2)
    hop = model.pretransform.downsampling_ratio
    assert audio.shape == (2, int(4.0 * model.sample_rate) // hop * hop)  # 4 s in whole codec frames
    assert np.array_equal(audio[0], audio[1])  # same prompt and seed: the same render
    gaps = {a: 1.0 for a in CONTRASTS}
    seen = []

    def loudness(audio, sr):  # a second opinion on the same renders
        seen.append(audio)
        return float(np.abs(audio).mean())

    stats = prompt_following(model, gaps=gaps, pairs=2, steps=2, attributes=("brightness",),
                             second_opinions={"brightness": ("loudness", loudness)})
    assert [(s.attribute, s.descriptor) for s in stats] == [("brightness", "centroid_hz"), ("brightness", "loudness")]
    assert stats[0].pairs == stats[1].pairs == 2 and len(seen) == 4  # both pairs' two renders, judged once each
    assert 0.0 <= stats[0].moved <= 1.0
    assert math.isnan(stats[1].gap) and math.isnan(stats[1].shift_over_gap)  # no class gap given: unknown
