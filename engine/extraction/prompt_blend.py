"""Prompt-level baseline: steering by text-embedding arithmetic (TADA App. H.1.1, "Text Embeddings").

The neutral prompt's conditioning is moved along the difference between a
positive and a negative prompt's conditioning::

    c(alpha) = c(neutral) + alpha * (c(positive) - c(negative))

for every conditioning tensor the model takes (cross-attention tokens and the
global embedding); masks are OR-ed, so a token present in any of the three
prompts stays visible. alpha = 0 is exactly the unsteered render. The paper
builds the three prompts so they share token count and padding; here any
prompts work as long as the conditioner pads them to one length (T5 and the
tiny/demo text encoders do).

This is the baseline activation steering is compared against: it changes the
input, not the model's internals, and TADA found its broad, prompt-induced
distortions leave the preservation window quickly.
"""

from __future__ import annotations

import contextlib
import time
import typing as tp

import numpy as np
import torch

from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.render import Render, RenderRequest

__all__ = ["blend_conditioning", "render_blend"]


def blend_conditioning(adapter: tp.Any, *, prompt: str, positive: str, negative: str, alpha: float,
                       seconds: float) -> dict[str, tp.Any]:
    """Conditioning inputs for ``sample`` with the text embedding moved by ``alpha * (pos - neg)``."""
    # A family whose prompts encode to different lengths pads them alike here (the adapter's choice).
    with getattr(adapter, "uniform_prompts", contextlib.nullcontext)():
        base = adapter.encode(prompt, seconds=seconds)
        pos = adapter.encode(positive, seconds=seconds)
        neg = adapter.encode(negative, seconds=seconds)
    out: dict[str, tp.Any] = {}
    for key, value in base.items():
        p, n = pos.get(key), neg.get(key)
        if not torch.is_tensor(value) or not torch.is_tensor(p) or not torch.is_tensor(n):
            out[key] = value
            continue
        if not (value.shape == p.shape == n.shape):
            raise EngineError(f"cannot blend prompt embeddings: '{key}' has shapes {tuple(value.shape)}, "
                              f"{tuple(p.shape)}, {tuple(n.shape)} for '{prompt}', '{positive}', '{negative}'; "
                              "the text encoder must pad all prompts to one length")
        if "mask" in key:
            out[key] = torch.maximum(torch.maximum(value, p), n)
        else:
            out[key] = value + alpha * (p - n)
    return out


def render_blend(model: tp.Any, request: RenderRequest, *, positive: str, negative: str, alpha: float) -> Render:
    """Render ``request`` with blended conditioning (no activation steering)."""
    if request.negative_prompt:
        raise EngineError("the prompt-blend baseline does not combine with a negative prompt; leave it unset")
    adapter = model.adapter
    with model._lock:  # noqa: SLF001 - same package; one render at a time
        t0 = time.perf_counter()
        if model.handle.attached:
            model.handle.set(None)  # a resident server's leftover offsets must not leak into the baseline
        cond = blend_conditioning(adapter, prompt=request.prompt, positive=positive, negative=negative,
                                  alpha=alpha, seconds=request.seconds)
        latents = adapter.sample(cond, seed=request.seed, seconds=request.seconds, steps=request.steps,
                                 cfg_scale=request.cfg_scale, sampler=request.sampler)
        audio = np.ascontiguousarray(adapter.decode(latents, seconds=request.seconds).cpu().numpy(), dtype=np.float32)
    if not np.isfinite(audio).all():
        raise EngineError(f"prompt blend at alpha={alpha} produced NaN/inf audio; use a smaller alpha")
    return Render(audio, model.sample_rate, time.perf_counter() - t0)
