"""Activation patching over cross-attention layers (TADA, Sec. 3-4, Eq. 2).

For a counterfactual pair (target prompt has the concept, source does not) and
a seed, three kinds of render share the same noise:

* the *target* run (prompt ``P_c``), during which every layer's cross-attention
  context is captured;
* the *source* run (prompt ``P_~c``);
* for each layer ``l``, the source run again with layer ``l``'s cross-attention
  given the target's context, so its keys and values are the target run's
  (``to_kv`` is a fixed linear map of the context, so substituting the context
  is substituting K and V); every other layer still sees the source prompt.

The impact of layer ``l`` is TADA's Eq. 2 with a descriptor ``S`` in place of
the audio-text similarity, as a ratio of means over pairs and seeds (per-pair
ratios explode where one pair's target and source happen to score alike)::

    I_l = mean(S(patched_l) - S(source)) / mean(S(target) - S(source))

1 means patching that one layer moves the audio all the way to the target.

The patch is a module swapped in at ``block.cross_attn`` (no forward hooks:
they are silently dropped under torch.compile). Only the conditional rows'
context is replaced (which rows, the family's CFG layout, the step gate
knows); the unconditional rows keep their null (or negative-prompt) context.
"""

from __future__ import annotations

import contextlib
import math
import typing as tp
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from steerbridge.engine.cluster.pool import RenderPool
from steerbridge.engine.extraction.record import swapped_sites
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.render import RenderRequest
from steerbridge.engine.runtime.steering import SiteModule
from steerbridge.engine.vocab import DEFAULT_CFG_SCALE, DEFAULT_SECONDS, DEFAULT_STEPS

__all__ = ["ContextPatch", "context_patches", "PatchingResult", "activation_patching", "functional_layers",
           "patch_pair"]


class ContextPatch(SiteModule):
    """Wraps a cross-attention module: captures its context, or replaces the conditional rows' context.

    ``context_kwarg`` is the keyword the family's blocks pass the text context by
    (the adapter's ``context_kwarg``: ``context`` in stable-audio-tools,
    ``encoder_hidden_states`` in diffusers); which rows are conditional comes
    from the step gate (the family's CFG layout).
    """

    def __init__(self, inner: nn.Module, *, gate: tp.Any, context_kwarg: str = "context") -> None:
        super().__init__()
        self.inner = inner
        self._gate = gate
        self._key = context_kwarg
        self.capture = False
        self.captured: torch.Tensor | None = None  # [cond rows, L, d_ctx] of the first call
        self.replacement: torch.Tensor | None = None

    def forward(self, *args: tp.Any, **kwargs: tp.Any) -> torch.Tensor:
        context = kwargs.get(self._key)
        if context is not None:
            rows = self._gate.cond_rows(context.shape[0])
            if self.capture and self.captured is None:
                self.captured = context[rows].detach().clone()  # constant over steps: once is enough
            if self.replacement is not None:
                rep = self.replacement
                if rep.shape[1:] != context.shape[1:]:
                    raise EngineError(f"cannot patch: target context has shape {tuple(rep.shape[1:])} but the "
                                      f"source's is {tuple(context.shape[1:])}; both prompts must be padded to "
                                      "the same token length")
                rep = rep[:1].expand(rows.stop - rows.start, *rep.shape[1:]).to(context.dtype)
                kwargs[self._key] = torch.cat([context[:rows.start], rep, context[rows.stop:]], dim=0)
        return self.inner(*args, **kwargs)


def context_patches(adapter: tp.Any,
                    layers: Sequence[int]) -> contextlib.AbstractContextManager[dict[int, ContextPatch]]:
    """Swap a :class:`ContextPatch` in at each layer's cross-attention; always restore the originals."""
    key = getattr(adapter, "context_kwarg", "context")
    return swapped_sites(adapter, site="cross_attn", layers=layers,
                         make=lambda inner: ContextPatch(inner, gate=adapter.gate, context_kwarg=key))


@dataclass(frozen=True)
class PatchingResult:
    concept: str
    layers: tuple[int, ...]
    impact: tuple[float, ...]  # Eq. 2 per layer (nan if target and source score alike)
    source_score: float  # mean descriptor values
    target_score: float
    patched_scores: tuple[float, ...]
    pairs: int
    seeds: tuple[int, ...]
    functional: tuple[int, ...]

    def as_dict(self) -> dict[str, tp.Any]:
        return asdict(self)


def functional_layers(impact: Sequence[float], *, layers: Sequence[int] | None = None, share: float = 0.6,
                      max_width: int = 2) -> tuple[int, ...]:
    """The narrowest run of consecutive layers holding ``share`` of the positive impact.

    Tries widths 1..``max_width`` and returns the best window of the first width
    that reaches ``share``; if none does, the best window of ``max_width``.
    Negative impacts count as zero (a layer that pushes away is not functional);
    with no positive impact anywhere the answer is ``()``.
    """
    vals = np.nan_to_num(np.maximum(np.asarray(impact, dtype=np.float64), 0.0))
    layers = list(layers) if layers is not None else list(range(len(vals)))
    if len(vals) == 0 or len(vals) != len(layers):
        raise EngineError(f"functional_layers: {len(vals)} impacts for layers {layers}")
    total = vals.sum()
    if total <= 0:
        return ()
    best: tuple[float, int, int] = (-1.0, 0, 1)
    for width in range(1, min(max_width, len(vals)) + 1):
        sums = np.convolve(vals, np.ones(width), mode="valid")
        start = int(np.argmax(sums))  # first best window on ties
        best = (float(sums[start]), start, width)
        if sums[start] >= share * total:
            break
    _, start, width = best
    return tuple(layers[start:start + width])


def patch_pair(model: tp.Any, task: tuple) -> tuple[float, float, list[float]]:
    """A pool task: target, source and per-layer patched scores of one (target, source, seed)."""
    uniform = getattr(model.adapter, "uniform_prompts", contextlib.nullcontext)
    with uniform(), context_patches(model.adapter, task[3]) as patches:
        return _one_pair(model, patches, *task, tick=None)


def _one_pair(model: tp.Any, patches: dict[int, tp.Any], target: str, source: str, seed: int, layers: Sequence[int],
              score: Callable[[np.ndarray, int], float], gen: dict[str, tp.Any],
              *, tick: Callable[[], None] | None) -> tuple[float, float, list[float]]:
    def run(prompt: str) -> float:
        r = model.render(RenderRequest(prompt=prompt, seed=seed, **gen))
        if tick is not None:
            tick()
        return score(r.audio, r.sample_rate)

    for p in patches.values():
        p.capture, p.captured, p.replacement = True, None, None
    tgt = run(target)
    for p in patches.values():
        if p.captured is None:
            raise EngineError("the target run never called cross-attention with a context; "
                              "does this model condition on text through cross-attention?")
        p.capture = False
    src = run(source)
    patched = []
    for l in layers:
        patches[l].replacement = patches[l].captured
        try:
            patched.append(run(source))
        finally:
            patches[l].replacement = None
    return tgt, src, patched


def activation_patching(model: tp.Any, *, concept: str, pairs: Sequence[tuple[str, str]],
                        score: Callable[[np.ndarray, int], float], layers: Sequence[int] | None = None,
                        seeds: Sequence[int] = (0,), seconds: float = DEFAULT_SECONDS,
                        steps: int = DEFAULT_STEPS, cfg_scale: float = DEFAULT_CFG_SCALE,
                        share: float = 0.6, max_width: int = 2,
                        progress: Callable[[int, int], None] | None = None,
                        pool: RenderPool | None = None) -> PatchingResult:
    """Impact of each cross-attention layer on ``concept`` for (target, source) prompt ``pairs``.

    ``pool``: run each (pair, seed) there as one task (e.g. on Ray); the result is the same.
    """
    if "cross_attn" not in model.sites:
        raise EngineError(f"activation patching needs cross-attention layers; this model has sites {model.sites}")
    if not pairs or not seeds:
        raise EngineError("activation patching needs at least one (target, source) pair and one seed")
    layers = list(range(model.num_layers)) if layers is None else sorted(set(int(l) for l in layers))
    if min(layers) < 0 or max(layers) >= model.num_layers:
        raise EngineError(f"layers {layers} out of range 0..{model.num_layers - 1}")
    total, done = len(pairs) * len(seeds) * (2 + len(layers)), 0
    src_s: list[float] = []
    tgt_s: list[float] = []
    patched: list[list[float]] = [[] for _ in layers]

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    gen = dict(seconds=seconds, steps=steps, cfg_scale=cfg_scale)
    tasks = [(target, source, seed, layers, score, gen) for target, source in pairs for seed in seeds]
    if pool is None:
        # A family whose prompts encode to different lengths pads them alike for the experiment (adapter's choice).
        uniform = getattr(model.adapter, "uniform_prompts", contextlib.nullcontext)
        with uniform(), context_patches(model.adapter, layers) as patches:
            outcomes = [_one_pair(model, patches, *task, tick=tick) for task in tasks]
    else:
        per_task = 2 + len(layers)
        outcomes = pool.map(patch_pair, tasks, progress=None if progress is None
                            else lambda d, _t: progress(d * per_task, total))
    for tgt, src, scores in outcomes:  # in (pair, seed) order, as the local loop makes them
        tgt_s.append(tgt)
        src_s.append(src)
        for i, value in enumerate(scores):
            patched[i].append(value)
    src, tgt = float(np.mean(src_s)), float(np.mean(tgt_s))
    gain = tgt - src
    # A descriptor gap below 1e-9 of its magnitude is numerical noise: Eq. 2 is undefined there.
    defined = abs(gain) > 1e-9 * max(1.0, abs(tgt), abs(src))
    impact = tuple(float((np.mean(p) - src) / gain) if defined else math.nan for p in patched)
    return PatchingResult(concept=concept, layers=tuple(layers), impact=impact, source_score=src, target_score=tgt,
                          patched_scores=tuple(float(np.mean(p)) for p in patched), pairs=len(pairs),
                          seeds=tuple(seeds), functional=functional_layers(impact, layers=layers, share=share,
                                                                           max_width=max_width))
