"""Linear probes per layer: a cheap ranking of where a concept is readable.

For each layer, an L2-regularised logistic regression separates positive from
negative site activations (frame-averaged, from :func:`collect_site_means`);
its k-fold cross-validated accuracy says how linearly readable the concept is
there. Probes only say where a concept can be *read*; activation patching
(engine/patching.py) says where it is *used*. TADA's AUSteer ablation shows
the two can disagree, so reports show both.

Folds are stratified, and grouped by prompt when samples are per diffusion
step (the steps of one prompt are near-duplicates; splitting them across train
and test would overstate accuracy). The fit is full-batch L-BFGS in float64 on
standardised features: deterministic, no scikit-learn needed.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from steerbridge.engine.extraction.caa import collect_site_means
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.vocab import DEFAULT_CFG_SCALE, DEFAULT_SECONDS, DEFAULT_STEPS

__all__ = ["ProbeResult", "cv_accuracy", "probe_activations", "probe_layers"]


def _fit_predict(x_tr: torch.Tensor, y_tr: torch.Tensor, x_te: torch.Tensor, *, l2: float,
                 iters: int) -> torch.Tensor:
    mu, sd = x_tr.mean(0), x_tr.std(0, unbiased=False).clamp_min(1e-8)
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    w = torch.zeros(a.shape[1], dtype=torch.float64, requires_grad=True)
    c = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, c], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a @ w + c, y_tr) + l2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return (b @ w + c > 0).to(torch.float64)


def _folds(y: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """Fold index per sample: groups dealt round-robin within each class (stratified, grouped)."""
    fold = np.empty(len(y), dtype=int)
    for cls in (0, 1):
        for i, g in enumerate(dict.fromkeys(groups[y == cls])):  # first-seen order: deterministic
            fold[(groups == g) & (y == cls)] = i % k
    return fold


def cv_accuracy(x: torch.Tensor, y: torch.Tensor, *, folds: int = 5, groups: Sequence[int] | None = None,
                l2: float = 1e-2, iters: int = 100) -> float:
    """k-fold cross-validated accuracy of a logistic-regression probe on ``x [n, d]``, labels ``y`` in {0, 1}."""
    x = x.detach().to(torch.float64).reshape(len(x), -1)
    y_np = np.asarray(y, dtype=int)
    g = np.arange(len(y_np)) if groups is None else np.asarray(groups)
    per_class = min(len(set(g[y_np == 0])), len(set(g[y_np == 1])))
    k = min(folds, per_class)
    if k < 2:
        raise EngineError(f"a {folds}-fold probe needs at least 2 prompts per class, got {per_class}; "
                          "add positive/negative prompts (more --base prompts)")
    fold = _folds(y_np, g, k)
    yt = torch.as_tensor(y_np, dtype=torch.float64)
    correct = 0.0
    for f in range(k):
        te, tr = torch.as_tensor(fold == f), torch.as_tensor(fold != f)
        pred = _fit_predict(x[tr], yt[tr], x[te], l2=l2, iters=iters)
        correct += float((pred == yt[te]).sum())
    return correct / len(y_np)


@dataclass(frozen=True)
class ProbeResult:
    concept: str
    site: str
    layers: tuple[int, ...]
    accuracy: tuple[float, ...]  # cross-validated, per layer
    folds: int
    samples: int
    top: tuple[int, ...]  # best layers, best first (earlier layer on ties)

    def as_dict(self) -> dict[str, tp.Any]:
        return asdict(self)


def probe_activations(pos: dict[int, torch.Tensor], neg: dict[int, torch.Tensor], *, concept: str,
                      site: str = "cross_attn", folds: int = 5, top_k: int = 2,
                      per_step: bool = False) -> ProbeResult:
    """Probe ``{layer: [prompts, steps, d]}`` activations (as from ``collect_site_means``)."""
    layers = sorted(pos)
    if sorted(neg) != layers:
        raise EngineError(f"positive layers {layers} and negative layers {sorted(neg)} differ")
    accs = []
    samples = 0
    used_folds = min(folds, len(pos[layers[0]]), len(neg[layers[0]]))  # folds never split a prompt
    for l in layers:
        p, n = pos[l].to(torch.float64), neg[l].to(torch.float64)
        if per_step:  # every (prompt, step) a sample, folds grouped by prompt
            x = torch.cat([p.reshape(-1, p.shape[-1]), n.reshape(-1, n.shape[-1])])
            groups = np.repeat(np.arange(len(p) + len(n)), p.shape[1])
        else:
            x, groups = torch.cat([p.mean(1), n.mean(1)]), None
        n_neg = n.shape[0] * (n.shape[1] if per_step else 1)
        y = np.r_[np.ones(len(x) - n_neg), np.zeros(n_neg)]
        accs.append(cv_accuracy(x, y, folds=folds, groups=groups))
        samples = len(x)
    order = sorted(range(len(layers)), key=lambda i: (-accs[i], layers[i]))
    return ProbeResult(concept=concept, site=site, layers=tuple(layers), accuracy=tuple(accs), folds=used_folds,
                       samples=samples, top=tuple(layers[i] for i in order[:top_k]))


def probe_layers(model: tp.Any, *, positive: Sequence[str], negative: Sequence[str], concept: str,
                 site: str = "cross_attn", layers: Sequence[int] | None = None, seed: int = 0,
                 seconds: float = DEFAULT_SECONDS,
                 steps: int = DEFAULT_STEPS, cfg_scale: float = DEFAULT_CFG_SCALE, folds: int = 5, top_k: int = 2,
                 per_step: bool = False, on_prompt: Callable[[], None] | None = None,
                 pool: tp.Any = None) -> ProbeResult:
    """Render the prompts, record ``site`` at ``layers`` and probe each layer (``pool``: render there)."""
    layers = list(range(model.num_layers)) if layers is None else sorted(set(int(l) for l in layers))
    kw = dict(site=site, layers=layers, seed=seed, seconds=seconds, steps=steps, cfg_scale=cfg_scale,
              on_prompt=on_prompt, pool=pool)
    pos, _ = collect_site_means(model, positive, **kw)
    neg, _ = collect_site_means(model, negative, **kw)
    return probe_activations(pos, neg, concept=concept, site=site, folds=folds, top_k=top_k, per_step=per_step)
