"""Prompt-following of the demo model, measured with model-free descriptors.

For each contrast (bright/dark, fast/slow, major/minor, busy/sparse) we render
same-seed caption pairs that differ in exactly one word and ask whether the
descriptor moves the prompted way. Base captions use the held-out
(instrument, tempo, mode) combinations and seeds the corpus never used, so the
score is about composing words, not recalling training clips.

Reported per contrast: the fraction of pairs that moved the right way, the
paired effect size (mean difference / its standard deviation) and the mean
shift as a fraction of the gap between the two classes in the training data
-- the issue's acceptance measures. A contrast can be judged by a second
descriptor too (the acceptance judges fast/slow by librosa's tempo beside the
onset rate, reported, not gating).

The sampler is upstream's ``sample_rf`` called exactly as
``generate_diffusion_cond`` calls it, so the numbers hold for the engine's
render path with the same steps and CFG scale.
"""

from __future__ import annotations

import dataclasses
import math
import typing as tp

import numpy as np
import torch

from steerbridge.engine.adapters.sat import sat
from steerbridge.engine.demo.captions import ATTRIBUTES, HELD_OUT, caption
from steerbridge.engine.demo.corpus import CorpusOptions, sample_attributes
from steerbridge.engine.demo.data import CONTRASTS
from steerbridge.engine.evaluation.descriptors import describe

__all__ = ["PairStats", "caption_pairs", "render_latents", "render_audio", "prompt_following", "beat_tracker"]

EVAL_SEED = 7_000_000  # noise seeds from here on; training clips use seed * 1e6 + i < 1e6 * (seed+1)


@dataclasses.dataclass(frozen=True)
class PairStats:
    attribute: str
    descriptor: str
    pairs: int
    moved: float  # fraction of pairs moving the prompted way
    effect: float  # mean(diff) / std(diff)
    shift: float  # mean(diff)
    gap: float  # training-data class gap
    shift_over_gap: float

    def line(self) -> str:
        return (f"{self.attribute:10s} {self.descriptor:11s} moved {self.moved:5.0%} "
                f"effect {self.effect:5.2f} shift {self.shift:8.3f} ({self.shift_over_gap:5.0%} of gap "
                f"{self.gap:.3f})")


def caption_pairs(attribute: str, *, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (positive, negative) captions differing only in ``attribute``'s word."""
    pos, neg, _ = CONTRASTS[attribute]
    rng = np.random.default_rng([seed, list(ATTRIBUTES).index(attribute)])
    held = sorted(HELD_OUT)
    out = []
    for i in range(n):
        base = sample_attributes(rng, options=CorpusOptions(include_held_out=True))
        inst, tempo, mode = held[i % len(held)]
        base = base.replace(instrument=inst, tempo=tempo, mode=mode)
        mention = {a: bool(rng.random() < 0.5) for a in ATTRIBUTES}
        mention[attribute] = mention["instrument"] = True
        words = int(rng.integers(1 << 31))
        out.append(tuple(caption(base.replace(**{attribute: c}), rng=np.random.default_rng(words),
                                 mention=mention) for c in (pos, neg)))
    return out  # type: ignore[return-value]


@torch.no_grad()
def render_latents(model: tp.Any, prompts: list[str], seeds: list[int], *, steps: int,
                   cfg_scale: float, frames: int, extra: list[dict[str, tp.Any]] | None = None) -> torch.Tensor:
    """Sample latents [B, channels, frames] with upstream's rectified-flow sampler; ``extra``: per prompt,
    more conditioning metadata (a beat-conditioned model's ``beat``, engine/demo/beat.py)."""
    noise = torch.stack([torch.randn(model.io_channels, frames, generator=torch.Generator().manual_seed(s))
                         for s in seeds])
    cond = model.conditioner([{"prompt": p, **(extra[i] if extra else {})} for i, p in enumerate(prompts)], "cpu")
    inputs = model.get_conditioning_inputs(cond)
    return sat("sampling").sample_rf(model.model, noise, steps=steps, cfg_scale=cfg_scale,
                                     batch_cfg=True, rescale_cfg=True, device="cpu",
                                     dist_shift=model.dist_shift, disable_tqdm=True, **inputs)


def render_audio(model: tp.Any, prompts: list[str], seeds: list[int], *, steps: int = 8,
                 cfg_scale: float = 5.0, frames: int | None = None, chunk: int = 16,
                 extra: list[dict[str, tp.Any]] | None = None) -> np.ndarray:
    """Rendered audio [B, samples] (mono), in chunks to bound memory; ``frames`` defaults to 4 s."""
    frames = frames or int(4.0 * model.sample_rate) // model.pretransform.downsampling_ratio
    out = []
    for i in range(0, len(prompts), chunk):
        z = render_latents(model, prompts[i:i + chunk], seeds[i:i + chunk], steps=steps,
                           cfg_scale=cfg_scale, frames=frames, extra=extra[i:i + chunk] if extra else None)
        out.append(model.pretransform.decode(z)[:, 0].numpy())
    return np.concatenate(out)


def prompt_following(model: tp.Any, *, gaps: dict[str, float], pairs: int = 8, steps: int = 8,
                     cfg_scale: float = 5.0, attributes: tp.Sequence[str] = tuple(CONTRASTS), seed: int = 0,
                     second_opinions: tp.Mapping[str, tuple[str, tp.Callable[[np.ndarray, int], float]]] | None = None,
                     bpm: float | None = None) -> list[PairStats]:
    """Per contrast, the pairs' stats by its descriptor; then, for an attribute in ``second_opinions``
    (attribute -> (name, fn(audio, sr))), the same renders judged by that descriptor too (its class gap is
    ``gaps[f"{attribute}/{name}"]`` when given, else unknown: shift_over_gap is nan). ``bpm``: a
    beat-conditioned model renders every caption at this tempo (None: no beat input)."""
    prompts: list[str] = []
    seeds: list[int] = []
    for attribute in attributes:
        for i, (p, n) in enumerate(caption_pairs(attribute, n=pairs, seed=seed)):
            prompts += [p, n]
            seeds += [EVAL_SEED + i] * 2  # same seed within a pair
    audio = render_audio(model, prompts, seeds, steps=steps, cfg_scale=cfg_scale,
                         extra=None if bpm is None else [{"beat": bpm}] * len(prompts))
    sr = model.sample_rate
    stats, extra, second_opinions = [], [], second_opinions or {}
    for k, attribute in enumerate(attributes):
        name = CONTRASTS[attribute][2]
        block = audio[2 * pairs * k: 2 * pairs * (k + 1)]
        stats.append(_stats(attribute, name, np.array([getattr(describe(a, sr), name) for a in block]),
                            gaps[attribute]))
        if attribute in second_opinions:
            other, fn = second_opinions[attribute]
            extra.append(_stats(attribute, other, np.array([fn(a, sr) for a in block]),
                                gaps.get(f"{attribute}/{other}", math.nan)))
    return stats + extra


def beat_tracker() -> dict[str, tuple[str, tp.Callable[[np.ndarray, int], float]]]:
    """``second_opinions`` that also judge fast/slow by librosa's tempo (training logs it beside the onset
    rate); empty when librosa (the ``eval`` extra) is not installed."""
    try:
        import librosa  # noqa: F401
    except ImportError:
        return {}
    from steerbridge.engine.evaluation.rhythm import librosa_tempo

    return {"tempo": ("librosa_tempo", librosa_tempo)}


def _stats(attribute: str, descriptor: str, values: np.ndarray, gap: float) -> PairStats:
    """Pairs' stats from descriptor ``values`` ordered positive, negative, positive, ..."""
    diff = values[0::2] - values[1::2]
    std = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
    shift = float(diff.mean())
    return PairStats(attribute=attribute, descriptor=descriptor, pairs=len(diff), moved=float((diff > 0).mean()),
                     effect=shift / std if std > 0 else 0.0, shift=shift, gap=gap,
                     shift_over_gap=shift / gap if gap else 0.0)
