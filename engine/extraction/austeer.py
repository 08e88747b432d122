"""AUSteer: sparse steering vectors from sign-consistent dimensions (TADA App. H.1.4, Eqs. 6 and 8).

For each contrastive pair ``i`` (positive and negative prompt rendered with the
same seed, so their time frames line up) and each time frame ``t`` the
momentum is ``m = a_pos - a_neg`` per dimension. A dimension's score is how
consistently its momentum has one sign over all pairs x frames::

    r+ = frac(m > 0),  r- = frac(m < 0),  beta = +max(r+, r-) if r+ >= r- else -max(r+, r-)

so ``|beta|`` lies in [0.5, 1] and is 1 only where every sample agrees. A
*global* top-k over ``|beta|`` across all active layers keeps k (layer,
dimension) entries and zeroes the rest; the steering vector is that sparse
``beta`` itself, added as ``h + alpha * beta`` (the paper's additive
adaptation, Eq. 8; the original multiplicative form gave no gain on audio).
Because the budget is global, layers whose dimensions never make the top-k get
no vector at all: AUSteer localises by itself, and restricting its active
layers to the patching-found ones is the "localized" variant.

With ``per_step=True`` scores and the top-k are computed per diffusion step
(the paper's form; vectors ``[steps, d]``); by default steps are pooled as
further samples and one ``[d]`` vector per layer results.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Sequence

import torch

from steerbridge.engine.extraction.frames import SiteFrames, collect_site_frames
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta
from steerbridge.engine.vocab import DEFAULT_CFG_SCALE, DEFAULT_SECONDS, DEFAULT_STEPS

__all__ = ["sign_consistency", "global_topk_mask", "austeer_vector", "extract_austeer"]


def sign_consistency(pos: torch.Tensor, neg: torch.Tensor, *, per_step: bool = False) -> torch.Tensor:
    """Signed scores ``beta`` from paired frames ``[pairs, steps, T, d]`` -> ``[d]`` (or ``[steps, d]``)."""
    if pos.shape != neg.shape:
        raise EngineError(f"AUSteer pairs positive and negative renders frame by frame; shapes differ: "
                          f"{tuple(pos.shape)} vs {tuple(neg.shape)} (use as many positive as negative prompts)")
    m = (pos - neg).transpose(0, 1)  # [steps, pairs, T, d]
    m = m.reshape(m.shape[0], -1, m.shape[-1]) if per_step else m.reshape(1, -1, m.shape[-1])
    r_pos = (m > 0).to(torch.float64).mean(1)
    r_neg = (m < 0).to(torch.float64).mean(1)
    beta = torch.where(r_pos >= r_neg, torch.maximum(r_pos, r_neg), -torch.maximum(r_pos, r_neg))
    return beta if per_step else beta[0]


def global_topk_mask(scores: dict[int, torch.Tensor], k: int) -> dict[int, torch.Tensor]:
    """Boolean masks keeping the k largest ``|score|`` entries across all layers (per row for ``[steps, d]``).

    Ties go to the earlier layer, then the lower dimension (stable sort), so the
    selection is deterministic.
    """
    if k < 1:
        raise EngineError(f"AUSteer top-k must be >= 1, got {k}")
    layers = sorted(scores)
    rows = [scores[l].reshape(-1, scores[l].shape[-1]) for l in layers]  # [S, d_l]; d_l differs on a U-Net
    flat = torch.cat(rows, dim=1).abs()  # [S, sum d_l], layer-major: ties go to the earlier layer
    order = torch.sort(-flat, dim=1, stable=True).indices[:, :k]
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, True)
    parts = torch.split(mask, [r.shape[1] for r in rows], dim=1)
    return {l: part.reshape(scores[l].shape) for l, part in zip(layers, parts)}


def austeer_vector(pos: SiteFrames, neg: SiteFrames, *, concept: str, fingerprint: str, k: int | None = None,
                   layers: Sequence[int] | None = None, per_step: bool = False) -> ConceptVector:
    """The sparse AUSteer vector over the active ``layers`` (default: every recorded layer)."""
    layers = sorted(pos.frames) if layers is None else sorted(set(int(l) for l in layers))
    missing = [l for l in layers if l not in pos.frames or l not in neg.frames]
    if missing:
        raise EngineError(f"AUSteer: layers {missing} were not recorded (recorded: {list(pos.layers)})")
    d = min(pos.frames[l].shape[-1] for l in layers)  # the narrowest layer's width (a U-Net's differ)
    k = max(1, d // 4) if k is None else int(k)
    beta = {l: sign_consistency(pos.frames[l], neg.frames[l], per_step=per_step) for l in layers}
    mask = global_topk_mask(beta, k)
    tensors = {l: (beta[l] * mask[l]).to(torch.float32) for l in layers if bool(mask[l].any())}
    counts = {l: int(mask[l].sum()) for l in layers}
    meta = VectorMeta(concept=concept, site=pos.site, method="austeer", fingerprint=fingerprint,
                      positive=pos.prompts, negative=neg.prompts,
                      site_norms={l: (pos.norms[l] + neg.norms[l]) / 2 for l in tensors},
                      extra={"k": k, "per_step": per_step, "active_layers": list(layers),
                             "selected_per_layer": {str(l): c for l, c in counts.items()}})
    return ConceptVector(tensors, meta)


def extract_austeer(model: tp.Any, *, positive: Sequence[str], negative: Sequence[str], concept: str,
                    site: str = "cross_attn", layers: Sequence[int] | None = None, k: int | None = None,
                    seed: int = 0, seconds: float = DEFAULT_SECONDS,
                    steps: int = DEFAULT_STEPS, cfg_scale: float = DEFAULT_CFG_SCALE,
                    per_step: bool = False, max_frames: int | None = None) -> ConceptVector:
    """Render positive/negative prompts (paired by index) and build the AUSteer vector."""
    if len(positive) != len(negative) or not positive:
        raise EngineError(f"AUSteer needs paired prompts: {len(positive)} positive vs {len(negative)} negative")
    layers = list(range(model.num_layers)) if layers is None else sorted(set(int(l) for l in layers))
    kw = dict(site=site, layers=layers, seed=seed, seconds=seconds, steps=steps, cfg_scale=cfg_scale,
              max_frames=max_frames)
    pos = collect_site_frames(model, positive, **kw)
    neg = collect_site_frames(model, negative, **kw)
    return austeer_vector(pos, neg, concept=concept, fingerprint=model.fingerprint, k=k, layers=layers,
                          per_step=per_step)
