"""LoopCache: LRU order, MB bound, read-only entries; loop_key covers everything that changes audio."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from steerbridge.bridge.engine_link.jobs import RenderJob, VectorTerm, render_job_for
from steerbridge.bridge.live.cache import LoopCache, loop_key
from steerbridge.bridge.presets.model import load_preset

DEMO = Path(__file__).resolve().parent.parent / "presets" / "tiny.toml"


def loop(mb: float, fill: float = 0.0) -> np.ndarray:
    return np.full((2, int(mb * 1_000_000) // 8), fill, dtype=np.float32)  # 2 ch x 4 bytes


def test_lru_eviction_by_bytes() -> None:
    cache = LoopCache(max_mb=3)
    for key in "abc":
        assert cache.put(key, loop(1), 16000) is not None
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", loop(1), 16000)  # evicts b, the least recently used
    assert "b" not in cache and all(k in cache for k in "acd")
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.evictions, stats.hits) == (3, 3_000_000, 1, 1)
    cache.put("big", loop(2.5), 16000)  # needs two evictions
    assert len(cache) == 1 and "big" in cache and cache.stats().bytes == 2_500_000


def test_oversized_loop_is_not_stored_and_evicts_nothing() -> None:
    cache = LoopCache(max_mb=1)
    cache.put("a", loop(0.5), 16000)
    assert cache.put("huge", loop(2), 16000) is None
    assert "a" in cache and "huge" not in cache


def test_entries_are_private_read_only_copies() -> None:
    cache = LoopCache(max_mb=1)
    audio = loop(0.1, fill=1.0)
    stored = cache.put("a", audio, 16000)
    audio[:] = 5.0
    got = cache.get("a")
    assert got is stored and got.sample_rate == 16000 and float(got.audio.max()) == 1.0
    with pytest.raises(ValueError):
        got.audio[0, 0] = 2.0
    cache.put("a", loop(0.2), 8000)  # replacing a key re-counts its bytes
    assert cache.stats().bytes == 200_000 and cache.get("a").sample_rate == 8000


def test_bad_size_is_refused() -> None:
    with pytest.raises(ValueError, match="positive size"):
        LoopCache(max_mb=0)


def test_loop_key_changes_with_every_audio_field(tmp_path: Path) -> None:
    vec = tmp_path / "v.safetensors"
    vec.write_bytes(b"one")
    base = RenderJob(prompt="p", terms=(VectorTerm(str(vec), 1.0),))
    key = loop_key(base, fingerprint="f")
    variants = [replace(base, prompt="q"), replace(base, seed=1), replace(base, seconds=2.0),
                replace(base, steps=9), replace(base, sampler="euler"), replace(base, cfg_scale=1.0),
                replace(base, cfg_mode="both"), replace(base, start_step=2), replace(base, alpha_units="norm"),
                replace(base, negative_prompt="x"),
                replace(base, terms=(VectorTerm(str(vec), 1.5),)),
                replace(base, terms=(VectorTerm(str(vec), 1.0, layers=(1,)),)),
                replace(base, terms=(VectorTerm(str(vec), 1.0, one_to_all=0),)), replace(base, terms=())]
    keys = {loop_key(v, fingerprint="f") for v in variants}
    assert len(keys) == len(variants) and key not in keys
    assert loop_key(base, fingerprint="g") != key
    assert loop_key(base, fingerprint="f") == key  # stable
    vec.write_bytes(b"two")  # same path, new content: another key
    os.utime(vec, ns=(1, 1))
    assert loop_key(base, fingerprint="f") != key


def test_render_job_for_drops_zero_terms_and_keeps_knob_settings() -> None:
    preset = load_preset(DEMO)
    zero = render_job_for(preset, {"mood": 0.0, "tempo": 0.0, "brightness": 0.0})
    assert zero.terms == () and zero == render_job_for(preset, {})
    job = render_job_for(preset, {"tempo": 1.5}, prompt="x", seed=3)
    (term,) = job.terms
    assert term.alpha == 1.5 and term.layers == (1, 2)
    assert term.orthogonalize_against == (str(preset.vector_path("mood")),)
    assert (job.prompt, job.seed, job.steps) == ("x", 3, preset.model.steps)
