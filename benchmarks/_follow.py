"""Prompt following for benchmarks/demo_acceptance.py (its part 1): same-seed caption pairs one attribute
word apart (engine/demo/follow.py), judged by benchmarks/_targets.py's FOLLOW.

Fast/slow is judged by the onset rate, and reported by librosa's tempo estimate too (the same renders): a
beat tracker's view of whether the model's own words move the beat, which steering cannot do for it.
"""

from __future__ import annotations

import dataclasses
import functools
import typing as tp

from _targets import FOLLOW, GATING

__all__ = ["follow_part", "is_demo_family"]


def is_demo_family(config: dict) -> bool:
    confs = config.get("model", {}).get("conditioning", {}).get("configs", [])
    return any(str(c.get("type", "")).startswith("steerbridge_minilm") for c in confs)


def follow_part(runner: tp.Any, preset: tp.Any, args: tp.Any, *, log: tp.Callable[[str], None],
                second_opinion: tp.Callable[[str, tp.Any, int], float]) -> dict:
    """``second_opinion(name, audio, sr)``: demo_acceptance's independent descriptors (nan when missing)."""
    if not is_demo_family(runner.model.config):
        return {"skipped": "the model's text conditioner is not MiniLM (not the demo model family): "
                           "prompt following is measured on the demo vocabulary only"}
    from steerbridge.engine.demo.corpus import CorpusOptions
    from steerbridge.engine.demo.data import synthetic_class_gaps
    from steerbridge.engine.demo.follow import prompt_following
    from steerbridge.engine.demo.train import TrainConfig

    log(f"class gaps: synthesising {args.gap_clips} corpus clips")
    gaps = synthetic_class_gaps(args.gap_clips, options=CorpusOptions(
        mood_tempo_coupling=TrainConfig.mood_tempo_coupling, synth=TrainConfig.synth,
        sample_rate=runner.model.sample_rate))
    args.gaps = gaps
    log(f"prompt following: {args.pairs} pairs x {len(gaps)} contrasts")
    runner.model.detach_steering()  # sample_rf runs the raw wrapper: no steering may be left attached
    librosa = functools.partial(second_opinion, "librosa_tempo")
    stats = prompt_following(runner.model.model, gaps=gaps, pairs=args.pairs, steps=preset.model.steps,
                             cfg_scale=preset.model.cfg_scale, seed=args.seed,
                             second_opinions={"tempo": ("librosa_tempo", librosa)})
    out = {}
    for s in stats:
        log(s.line())
        if s.attribute in out:  # a second opinion on the same renders: reported, not judged (no class gap)
            out[f"{s.attribute}/{s.descriptor}"] = {**dataclasses.asdict(s), "pass": None, "gating": False}
            continue
        ok = all(getattr(s, k) >= v for k, v in FOLLOW.items())
        out[s.attribute] = {**dataclasses.asdict(s), "pass": ok, "gating": s.attribute in GATING}
    return {"gap_clips": args.gap_clips, "gaps": gaps, "contrasts": out}
