"""TopK SAE: reconstructs a sparse low-rank signal, TF-IDF finds the planted concept feature."""

from __future__ import annotations

import pytest
import torch

from steerbridge.engine.extraction.frames import SiteFrames
from steerbridge.engine.extraction.sae import TopKSAE, load_sae, sae_vector, save_sae, tfidf_scores, train_sae
from steerbridge.engine.runtime.errors import VectorFileError

D, ATOMS, CONCEPT = 32, 12, 5


def _dictionary() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(ATOMS, D, generator=gen)
    return w / w.norm(dim=1, keepdim=True)


def _samples(n: int, *, seed: int, with_concept: bool | None) -> torch.Tensor:
    """Each sample: 2 random atoms with positive weights (+ the concept atom, if asked)."""
    gen = torch.Generator().manual_seed(seed)
    atoms = _dictionary()
    others = [a for a in range(ATOMS) if a != CONCEPT] if with_concept is not None else list(range(ATOMS))
    idx = torch.tensor(others)[torch.randint(len(others), (n, 2), generator=gen)]
    coef = torch.zeros(n, ATOMS).scatter_(1, idx, 1.0 + torch.rand(n, 2, generator=gen))
    if with_concept:
        coef[:, CONCEPT] = 1.5 + torch.rand(n, generator=gen)
    return coef @ atoms + 0.3


@pytest.fixture(scope="module")
def trained():
    x = _samples(3000, seed=1, with_concept=None)
    return train_sae(x, expansion=2, k=4, epochs=8, batch_size=128, seed=0)


def test_sae_reconstructs_low_rank_sparse_signal(trained):
    sae, stats = trained
    assert stats.fvu < 0.1
    assert 0.0 <= stats.dead_fraction < 0.5 and 0.0 <= stats.dense_fraction <= 1.0
    assert stats.samples == 3000
    z = sae.encode(_samples(10, seed=2, with_concept=None))
    assert int((z > 0).sum(1).max()) <= 4  # TopK sparsity
    assert torch.allclose(sae.W_dec.norm(dim=0), torch.ones(sae.n_features), atol=1e-5)


def test_training_is_seeded(trained):
    x = _samples(3000, seed=1, with_concept=None)
    again, _ = train_sae(x, expansion=2, k=4, epochs=8, batch_size=128, seed=0)
    assert torch.equal(again.W_dec, trained[0].W_dec)


def test_tfidf_picks_the_concept_feature_and_vector_points_at_the_atom(trained):
    sae, _ = trained
    pos = _samples(400, seed=3, with_concept=True)
    neg = _samples(400, seed=4, with_concept=False)
    best = int(tfidf_scores(sae, pos, neg).argmax())
    atom = _dictionary()[CONCEPT]
    assert float(sae.W_dec[:, best] @ atom) > 0.9

    def frames(x: torch.Tensor, name: str) -> SiteFrames:
        f = x.reshape(4, 1, 100, D)  # [prompts, steps, T, d]
        return SiteFrames("cross_attn", tuple(f"{name}{i}" for i in range(4)), {2: f}, {2: f.mean(2)}, {2: 1.0})

    vec = sae_vector({2: sae}, frames(pos, "p"), frames(neg, "n"), concept="planted", fingerprint="fp", top=1)
    assert vec.method == "sae" and vec.layers == (2,)
    assert torch.equal(vec.tensor(2), sae.W_dec[:, best])
    assert vec.meta.extra["features"] == {"2": [best]}


def test_save_and_load_roundtrip(trained, tmp_path):
    sae, stats = trained
    path = save_sae(sae, tmp_path / "sae_l2.safetensors", layer=2, site="cross_attn", fingerprint="fp", stats=stats)
    back, meta = load_sae(path, fingerprint="fp")
    assert isinstance(back, TopKSAE) and meta["layer"] == 2 and meta["stats"]["fvu"] == stats.fvu
    assert torch.equal(back.W_enc, sae.W_enc) and back.k == sae.k
    with pytest.raises(VectorFileError, match="retrain"):
        load_sae(path, fingerprint="other")
