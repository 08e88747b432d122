"""Per-frame site activations: what AUSteer (pairs x time frames) and SAE training need.

:func:`steerbridge.engine.extraction.caa.collect_site_means` keeps only frame-averaged rows. Here
the same recorders (:func:`steerbridge.engine.extraction.record.record_sites`) are swapped in, and each
recorder's inner module is additionally wrapped in a :class:`FrameTap` that keeps
the conditional rows' full ``[T, d]`` output. ``record_sites`` restores the
original modules on exit, so the taps vanish with it. Because the recorders
still run, one pass yields the frame-averaged means as well (the same numbers
``collect_site_means`` would give), and CAA, probes, AUSteer and SAE can share
one set of renders.

Whatever steering is currently set on the model is recorded too (the
planted-direction tests rely on that); call ``model.handle.set(None)`` first
for clean activations.

Memory: ``prompts x kept steps x T x d`` floats per layer. Keep ``every`` and
``max_frames`` in mind for full-size models (SAO: T~215, d=1536).
"""

from __future__ import annotations

import typing as tp
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from steerbridge.engine.extraction.record import record_sites
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.steering import SiteModule

__all__ = ["FrameTap", "SiteFrames", "collect_site_frames"]


class FrameTap(SiteModule):
    """Passes through; keeps the conditional rows' per-frame output for chosen steps."""

    def __init__(self, inner: nn.Module, *, gate: tp.Any, every: int, max_frames: int | None) -> None:
        super().__init__()
        self.inner = inner
        self._gate = gate
        self._every = every
        self._max_frames = max_frames
        self.by_step: dict[int, list[torch.Tensor]] = {}

    def forward(self, *args: tp.Any, **kwargs: tp.Any) -> torch.Tensor:
        y = self.inner(*args, **kwargs)
        step = self._gate.steps_done
        if step % self._every == 0:
            frames = y[self._gate.cond_rows(y.shape[0])].detach().float()
            if self._max_frames is not None and frames.shape[1] > self._max_frames:
                # Evenly strided frames: keeps the whole clip's span, not just its start.
                idx = torch.linspace(0, frames.shape[1] - 1, self._max_frames, device=frames.device).round().long()
                frames = frames.index_select(1, idx)
            self.by_step.setdefault(step, []).append(frames.cpu())
        return y

    def per_step(self) -> torch.Tensor:
        """``[steps_kept, T, d]``: mean over calls (and rows) within each kept step."""
        return torch.stack([torch.cat(self.by_step[s]).mean(0) for s in sorted(self.by_step)])


@dataclass(frozen=True)
class SiteFrames:
    """Activations of one site for a list of prompts (same seed for all)."""

    site: str
    prompts: tuple[str, ...]
    frames: dict[int, torch.Tensor]  # layer -> [prompts, kept steps, T, d]
    means: dict[int, torch.Tensor]  # layer -> [prompts, steps, d], frame-averaged (all steps)
    norms: dict[int, float]  # layer -> mean per-frame activation norm

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(sorted(self.frames))


def collect_site_frames(model: tp.Any, prompts: Sequence[str], *, site: str, layers: Sequence[int], seed: int,
                        seconds: float, steps: int, cfg_scale: float, every: int = 1,
                        max_frames: int | None = None,
                        on_prompt: Callable[[], None] | None = None) -> SiteFrames:
    """Render each prompt once and keep per-frame and frame-averaged activations at ``layers``."""
    if not prompts:
        raise EngineError("collect_site_frames needs at least one prompt")
    if every < 1:
        raise EngineError(f"every must be >= 1 (keep every n-th diffusion step), got {every}")
    adapter = model.adapter
    layers = list(layers)
    frames: dict[int, list[torch.Tensor]] = {l: [] for l in layers}
    means: dict[int, list[torch.Tensor]] = {l: [] for l in layers}
    norms: dict[int, list[float]] = {l: [] for l in layers}
    with model._lock, record_sites(adapter, site=site, layers=layers) as recs:  # noqa: SLF001 - same package
        taps = {}
        for l, rec in recs.items():
            taps[l] = FrameTap(rec.inner, gate=adapter.gate, every=every, max_frames=max_frames)
            rec.inner = taps[l]  # record_sites restores the original module, not rec.inner
        for prompt in prompts:
            for l in layers:
                recs[l].reset()
                taps[l].by_step.clear()
            cond = adapter.encode(prompt, seconds=seconds)
            adapter.sample(cond, seed=seed, seconds=seconds, steps=steps, cfg_scale=cfg_scale)
            for l in layers:
                frames[l].append(taps[l].per_step())
                means[l].append(recs[l].per_step_mean())
                norms[l].extend(recs[l].norms)
            if on_prompt is not None:
                on_prompt()
    return SiteFrames(site=site, prompts=tuple(prompts),
                      frames={l: torch.stack(f) for l, f in frames.items()},
                      means={l: torch.stack(m) for l, m in means.items()},
                      norms={l: float(sum(n) / len(n)) for l, n in norms.items()})
