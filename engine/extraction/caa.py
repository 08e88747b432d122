"""CAA / DiffMean extraction: ``v_l = mean(pos) - mean(neg)`` of a site's outputs.

Activations are recorded during real sampling (conditional rows only), averaged
over time frames, then over diffusion steps (or kept per step), then over
prompts. Prompts can be given as lists or as templates x base prompts, as in
the papers: ``expand_templates(["happy song, {base}"], ["piano loop", ...])``.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from steerbridge.engine.adapters.base import beat_kwargs
from steerbridge.engine.cluster.pool import RenderPool
from steerbridge.engine.extraction.positions import recording, resolve_position
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.steering import Steering
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta
from steerbridge.engine.vocab import DEFAULT_CFG_SCALE, DEFAULT_SECONDS, DEFAULT_STEPS

__all__ = ["extract_caa", "expand_templates", "collect_site_means", "record_prompt"]


def expand_templates(templates: Sequence[str], bases: Sequence[str]) -> list[str]:
    """``{base}`` in each template filled with each base prompt (templates without it pass through)."""
    out: list[str] = []
    for t in templates:
        out.extend([t.format(base=b) for b in bases] if "{base}" in t and bases else [t])
    return out


def collect_site_means(model: tp.Any, prompts: Sequence[str], *, site: str, layers: Sequence[int], seed: int,
                       seconds: float, steps: int, cfg_scale: float,
                       on_prompt: Callable[[], None] | None = None,
                       steering: Steering | None = None,
                       pool: RenderPool | None = None,
                       position: str = "all", bpm: float | None = None,
                       ) -> tuple[dict[int, torch.Tensor], dict[int, float]]:
    """Per layer ``[prompts, steps, d]`` frame-averaged activations, and mean activation norms.

    Recorded unsteered unless ``steering`` is given (e.g. to see what a vector does downstream);
    ``position`` picks the sequence positions kept (steerbridge.engine.extraction.positions).
    ``pool``: record the prompts there (e.g. on Ray), one task each; the result is the same.
    ``bpm``: a model with a beat input plays at this tempo (others ignore it).
    """
    kw = dict(site=site, layers=layers, seed=seed, seconds=seconds, steps=steps, cfg_scale=cfg_scale,
              position=position)
    if bpm is not None:  # only when asked: a pool task's keywords stay as they were for older workers
        kw["bpm"] = bpm
    if pool is None:
        acts, norms = _record(model, prompts, steering=steering, on_prompt=on_prompt, **kw)
    else:
        if steering is not None:
            raise EngineError("recording on a pool is unsteered; record steered activations locally")
        acts, norms = {l: [] for l in layers}, {l: [] for l in layers}
        done = pool.map(record_prompt, [(p, kw) for p in prompts],
                        progress=None if on_prompt is None else lambda _d, _t: on_prompt())
        for one_acts, one_norms in done:  # in prompt order: the lists the local loop builds
            for l in layers:
                acts[l] += one_acts[l]
                norms[l] += one_norms[l]
    return ({l: torch.stack(a) for l, a in acts.items()},
            {l: float(sum(n) / len(n)) for l, n in norms.items()})


def record_prompt(model: tp.Any, task: tuple[str, dict[str, tp.Any]]) -> tuple[dict[int, list[torch.Tensor]],
                                                                              dict[int, list[float]]]:
    """A pool task: one prompt's recording (per-step means and per-call norms, per layer)."""
    prompt, kw = task
    return _record(model, [prompt], steering=None, on_prompt=None, **kw)


def _record(model: tp.Any, prompts: Sequence[str], *, site: str, layers: Sequence[int], seed: int, seconds: float,
            steps: int, cfg_scale: float, steering: Steering | None, on_prompt: Callable[[], None] | None,
            position: str = "all", bpm: float | None = None,
            ) -> tuple[dict[int, list[torch.Tensor]], dict[int, list[float]]]:
    adapter = model.adapter
    beat = beat_kwargs(adapter, bpm)  # as SteerableModel.render plays it
    acts: dict[int, list[torch.Tensor]] = {l: [] for l in layers}
    norms: dict[int, list[float]] = {l: [] for l in layers}
    with model._lock:  # noqa: SLF001 - same package
        # Steering first, recorders around it: the recording is the site's output as heard,
        # and record_sites restores exactly what it found. Exactly the steering asked for:
        # a resident server's last one must not leak in.
        if steering is not None and steering.terms:
            model.handle.attach()
        if model.handle.attached:
            model.handle.set(steering)
        with recording(adapter, site=site, layers=layers, position=position) as recs:
            for prompt in prompts:
                for rec in recs.values():
                    rec.reset()
                cond = adapter.encode(prompt, seconds=seconds, **beat)
                adapter.sample(cond, seed=seed, seconds=seconds, steps=steps, cfg_scale=cfg_scale)
                for l, rec in recs.items():
                    acts[l].append(rec.per_step_mean())
                    norms[l].extend(rec.norms)
                if on_prompt is not None:
                    on_prompt()
    return acts, norms


def extract_caa(model: tp.Any, *, positive: Sequence[str], negative: Sequence[str], concept: str,
                site: str = "cross_attn", layers: Sequence[int] | None = None, seed: int = 0,
                seconds: float = DEFAULT_SECONDS,
                steps: int = DEFAULT_STEPS, cfg_scale: float = DEFAULT_CFG_SCALE, per_step: bool = False,
                normalize: bool = False, progress: Callable[[int, int], None] | None = None,
                show_progress: bool = False, pool: RenderPool | None = None,
                position: str | None = None, bpm: float | None = None) -> ConceptVector:
    """Difference of mean site activations between positive and negative prompts.

    ``pool``: render the prompts there (e.g. Ray actors); the vector is the same as without.
    ``position``: ``all`` (diffusion families), ``frames`` or ``eos`` (autoregressive
    families); None takes the family's default. ``bpm``: record a beat model at this tempo
    (as the bridge plays it; recorded in the vector's meta).
    """
    if not positive or not negative:
        raise EngineError("CAA needs at least one positive and one negative prompt")
    if site not in model.sites:
        raise EngineError(f"site '{site}' is not one of this model's sites {model.sites}")
    layers = list(range(model.num_layers)) if layers is None else sorted(set(int(l) for l in layers))
    if not layers or min(layers) < 0 or max(layers) >= model.num_layers:
        raise EngineError(f"layers {layers} out of range 0..{model.num_layers - 1}")
    position = resolve_position(model.adapter, position)
    total = len(positive) + len(negative)
    bar = tqdm(total=total, desc=f"extract {concept}", unit="prompt", disable=not show_progress)
    done = [0]

    def tick() -> None:
        done[0] += 1
        bar.update(1)
        if progress is not None:
            progress(done[0], total)

    kw = dict(site=site, layers=layers, seed=seed, seconds=seconds, steps=steps, cfg_scale=cfg_scale, on_prompt=tick,
              pool=pool, position=position, bpm=bpm)
    try:
        pos, pos_norms = collect_site_means(model, positive, **kw)
        neg, neg_norms = collect_site_means(model, negative, **kw)
    finally:
        bar.close()
    tensors: dict[int, torch.Tensor] = {}
    for l in layers:
        diff = pos[l].mean(0) - neg[l].mean(0)  # [steps, d]
        v = diff if per_step else diff.mean(0)
        if normalize:
            v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        tensors[l] = v
    meta = VectorMeta(
        concept=concept, site=site, method="caa", fingerprint=model.fingerprint, normalized=normalize,
        positive=tuple(positive), negative=tuple(negative),
        site_norms={l: (pos_norms[l] + neg_norms[l]) / 2 for l in layers},
        extra={"seed": seed, "seconds": seconds, "steps": steps, "cfg_scale": cfg_scale, "per_step": per_step,
               "position": position, **({"bpm": bpm} if bpm is not None else {})},
    )
    return ConceptVector(tensors, meta)
