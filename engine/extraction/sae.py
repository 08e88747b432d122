"""TopK sparse autoencoders on a site's activations, and SAE steering vectors (TADA App. H.1.4, Eqs. 9-13).

An SAE per layer maps an activation ``x [d]`` to ``n = expansion * d`` features::

    z = TopK(ReLU(W_enc (x - b_dec) + b_enc))        (only the k largest stay non-zero)
    x_hat = W_dec z + b_dec                            (decoder columns kept unit-norm)

trained to minimise ``||x - x_hat||^2`` on per-frame activations from diverse
prompts and diffusion steps (:func:`steerbridge.engine.extraction.frames.collect_site_frames`).
Reported health, as in the paper's Table 13: FVU (fraction of variance
unexplained), the fraction of *dead* features (never fired during the last
epoch) and of *dense* ones (fired in every batch of the last epoch).

Concept features are ranked by the TF-IDF-like score (Eq. 11)::

    score_j = mean_pos(z_j) * log(1 + 1 / (mean_neg(z_j) + 1e-6))

(fires a lot on positive prompts, rarely on negative ones), and the steering
vector is the sum of the top features' decoder columns (Eq. 12), added to the
site output (Eq. 13). SAEs are saved as safetensors with their settings and
health in the metadata.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from steerbridge.engine.extraction.frames import SiteFrames
from steerbridge.engine.runtime.errors import EngineError, VectorFileError
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta

__all__ = ["TopKSAE", "SAEStats", "train_sae", "tfidf_scores", "sae_vector", "save_sae", "load_sae"]


class TopKSAE(nn.Module):
    def __init__(self, d: int, n_features: int, k: int) -> None:
        super().__init__()
        if not 1 <= k <= n_features:
            raise EngineError(f"TopK SAE needs 1 <= k <= n_features, got k={k}, n_features={n_features}")
        self.d, self.n_features, self.k = d, n_features, k
        self.W_enc = nn.Parameter(torch.zeros(n_features, d))
        self.b_enc = nn.Parameter(torch.zeros(n_features))
        self.W_dec = nn.Parameter(torch.zeros(d, n_features))
        self.b_dec = nn.Parameter(torch.zeros(d))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu((x - self.b_dec) @ self.W_enc.T + self.b_enc)
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter_(-1, top.indices, top.values)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec.T + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=0, keepdim=True).clamp_min(1e-8))


@dataclass(frozen=True)
class SAEStats:
    fvu: float
    dead_fraction: float
    dense_fraction: float
    samples: int
    epochs: int
    final_loss: float


def fvu(sae: TopKSAE, x: torch.Tensor) -> float:
    """Fraction of variance unexplained: ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``."""
    with torch.no_grad():
        resid = (x - sae(x)).pow(2).sum()
        total = (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)
    return float(resid / total)


def train_sae(x: torch.Tensor, *, expansion: int = 4, k: int = 8, epochs: int = 30, batch_size: int = 256,
              lr: float = 2e-3, seed: int = 0) -> tuple[TopKSAE, SAEStats]:
    """Train a TopK SAE on ``x [samples, d]`` (seeded: same data and settings give the same SAE)."""
    x = x.detach().to(torch.float32).reshape(-1, x.shape[-1])
    n, d = x.shape
    if n < batch_size:
        batch_size = max(1, n)
    gen = torch.Generator().manual_seed(seed)
    sae = TopKSAE(d, expansion * d, k)
    with torch.no_grad():
        w = torch.randn(d, sae.n_features, generator=gen)
        sae.W_dec.copy_(w / w.norm(dim=0, keepdim=True))
        sae.W_enc.copy_(sae.W_dec.T)  # tied init: features start as their own decoders
        sae.b_dec.copy_(x.mean(0))  # centre first, so features model variation, not the offset
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    batches = math.ceil(n / batch_size)
    fired_every = torch.ones(sae.n_features, dtype=torch.bool)
    fired_any = torch.zeros(sae.n_features, dtype=torch.bool)
    loss = torch.zeros(())
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        last = epoch == epochs - 1
        for b in range(batches):
            xb = x[perm[b * batch_size:(b + 1) * batch_size]]
            z = sae.encode(xb)
            loss = (sae.decode(z) - xb).pow(2).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sae.normalize_decoder()
            if last:  # feature health over the last epoch
                fired = (z > 0).any(0)
                fired_any |= fired
                fired_every &= fired
    stats = SAEStats(fvu=fvu(sae, x), dead_fraction=float((~fired_any).float().mean()),
                     dense_fraction=float(fired_every.float().mean()), samples=n, epochs=epochs,
                     final_loss=float(loss.detach()))
    return sae.requires_grad_(False), stats


def tfidf_scores(sae: TopKSAE, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Eq. 11 per feature from positive and negative activations ``[..., d]`` (frames pooled by mean)."""
    with torch.no_grad():
        tf = sae.encode(pos.reshape(-1, sae.d).float()).mean(0)
        neg_mean = sae.encode(neg.reshape(-1, sae.d).float()).mean(0)
    return tf * torch.log1p(1.0 / (neg_mean + 1e-6))


def sae_vector(saes: dict[int, TopKSAE], pos: SiteFrames, neg: SiteFrames, *, concept: str, fingerprint: str,
               top: int = 4) -> ConceptVector:
    """Sum of the ``top`` TF-IDF features' decoder columns, per layer that has an SAE."""
    tensors, chosen = {}, {}
    for l, sae in sorted(saes.items()):
        if l not in pos.frames or l not in neg.frames:
            raise EngineError(f"SAE for layer {l} but no recorded activations there (have {list(pos.layers)})")
        scores = tfidf_scores(sae, pos.frames[l], neg.frames[l])
        idx = torch.sort(-scores, stable=True).indices[:top]
        tensors[l] = sae.W_dec[:, idx].sum(1).detach().clone()
        chosen[str(l)] = [int(i) for i in idx]
    meta = VectorMeta(concept=concept, site=pos.site, method="sae", fingerprint=fingerprint,
                      positive=pos.prompts, negative=neg.prompts,
                      site_norms={l: (pos.norms[l] + neg.norms[l]) / 2 for l in tensors},
                      extra={"top": top, "features": chosen})
    return ConceptVector(tensors, meta)


def save_sae(sae: TopKSAE, path: str | os.PathLike[str], *, layer: int, site: str, fingerprint: str,
             stats: SAEStats | dict | None = None) -> Path:
    """``W_enc, b_enc, W_dec, b_dec`` + JSON metadata under ``steerbridge_sae``."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise VectorFileError(f"{path}: SAE files are .safetensors")
    meta = {"d": sae.d, "n_features": sae.n_features, "k": sae.k, "layer": layer, "site": site,
            "fingerprint": fingerprint, "stats": asdict(stats) if isinstance(stats, SAEStats) else stats}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in sae.state_dict().items()}, str(path),
              metadata={"steerbridge_sae": json.dumps(meta, sort_keys=True)})
    return path


def load_sae(path: str | os.PathLike[str], *, fingerprint: str | None = None) -> tuple[TopKSAE, dict]:
    """Read an SAE file; refuse one trained on another model when ``fingerprint`` is given."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["steerbridge_sae"])
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, KeyError, ValueError) as exc:
        raise VectorFileError(f"{path}: not an SAE file written by steerbridge ({exc})") from exc
    if fingerprint is not None and meta["fingerprint"] != fingerprint:
        raise VectorFileError(f"{path} was trained on model {meta['fingerprint']}, not {fingerprint}; "
                              "retrain it on this model")
    sae = TopKSAE(meta["d"], meta["n_features"], meta["k"])
    sae.load_state_dict(state, strict=True)
    return sae.requires_grad_(False), meta


def train_layer_saes(frames: Sequence[SiteFrames], layers: Sequence[int], *, expansion: int = 4, k: int = 8,
                     epochs: int = 30, batch_size: int = 256,
                     seed: int = 0) -> dict[int, tuple[TopKSAE, SAEStats]]:
    """One SAE per layer on the pooled frames of several recordings (diverse prompts and steps)."""
    out = {}
    for l in layers:
        x = torch.cat([f.frames[l].reshape(-1, f.frames[l].shape[-1]) for f in frames])
        out[l] = train_sae(x, expansion=expansion, k=k, epochs=epochs, batch_size=batch_size, seed=seed + l)
    return out


__all__ += ["fvu", "train_layer_saes"]
