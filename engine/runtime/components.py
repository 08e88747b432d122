"""Model components stable-audio-tools does not have, and how they plug into its factory.

stable-audio-tools builds conditioners and pretransforms with fixed if/elif
chains (``create_multi_conditioner_from_conditioning_config``,
``create_pretransform_from_config``). steerbridge needs a few more types:
a text conditioner that works with no download (``steerbridge_wordhash``, for
tiny test models), and the demo model's own text encoder and decoder, which
register themselves here. :func:`custom_components` swaps the two upstream
factory functions for ones that build our registered types and delegate
everything else upstream; it is used only around model construction and
always restores the originals.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import re
import typing as tp
from collections.abc import Callable, Iterator

import torch
from torch import nn

from steerbridge.engine.adapters.sat import sat

__all__ = [
    "register_conditioner",
    "register_pretransform",
    "custom_components",
    "WordHashConditioner",
]

ConditionerFactory = Callable[[dict[str, tp.Any]], nn.Module]
PretransformFactory = Callable[[dict[str, tp.Any], int], nn.Module]

_CONDITIONERS: dict[str, ConditionerFactory] = {}
_PRETRANSFORMS: dict[str, PretransformFactory] = {}
# Types whose module registers them on import; loaded only when a config names them,
# so a model folder using them loads through the normal path without special steps.
_PROVIDERS = {
    "steerbridge_mel": "steerbridge.engine.demo.codec",
    "steerbridge_minilm": "steerbridge.engine.demo.text",
    "steerbridge_minilm_pooled": "steerbridge.engine.demo.text",
    "steerbridge_beat": "steerbridge.engine.demo.beat",
}


def _provide(type_name: str | None) -> None:
    if type_name in _PROVIDERS and type_name not in _CONDITIONERS and type_name not in _PRETRANSFORMS:
        importlib.import_module(_PROVIDERS[type_name])


def register_conditioner(type_name: str, factory: ConditionerFactory) -> None:
    """``factory(config)`` gets the conditioner's ``config`` plus ``output_dim``."""
    _CONDITIONERS[type_name] = factory


def register_pretransform(type_name: str, factory: PretransformFactory) -> None:
    """``factory(config, sample_rate)`` gets the pretransform's ``config`` dict."""
    _PRETRANSFORMS[type_name] = factory


@contextlib.contextmanager
def custom_components() -> Iterator[None]:
    """Let the upstream model factory build steerbridge's registered types."""
    diffusion = sat("diffusion")
    factory = sat("factory")
    orig_cond = diffusion.create_multi_conditioner_from_conditioning_config
    orig_pre_d = diffusion.create_pretransform_from_config
    orig_pre_f = factory.create_pretransform_from_config

    def build_conditioners(config: dict[str, tp.Any], pretransform: tp.Any = None) -> nn.Module:
        for c in config["configs"]:
            _provide(c.get("type"))
        ours = [c for c in config["configs"] if c["type"] in _CONDITIONERS]
        theirs = [c for c in config["configs"] if c["type"] not in _CONDITIONERS]
        multi = orig_cond({**config, "configs": theirs}, pretransform=pretransform)
        for info in ours:
            kwargs = {"output_dim": config["cond_dim"], **info.get("config", {})}
            multi.conditioners[info["id"]] = _CONDITIONERS[info["type"]](kwargs)
        # Keep the config's order so state-dict keys and outputs are stable.
        order = [c["id"] for c in config["configs"]]
        multi.conditioners = nn.ModuleDict({k: multi.conditioners[k] for k in order})
        return multi

    def build_pretransform(config: dict[str, tp.Any], sample_rate: int) -> nn.Module:
        _provide(config.get("type"))
        if config.get("type") in _PRETRANSFORMS:
            return _PRETRANSFORMS[config["type"]](config.get("config", {}), sample_rate)
        return orig_pre_f(config, sample_rate)

    diffusion.create_multi_conditioner_from_conditioning_config = build_conditioners
    diffusion.create_pretransform_from_config = build_pretransform
    factory.create_pretransform_from_config = build_pretransform
    try:
        yield
    finally:
        diffusion.create_multi_conditioner_from_conditioning_config = orig_cond
        diffusion.create_pretransform_from_config = orig_pre_d
        factory.create_pretransform_from_config = orig_pre_f


class WordHashConditioner(nn.Module):
    """Text -> token embeddings with no tokenizer download.

    Words (lower-cased, split on non-letters) are hashed (BLAKE2s, stable across
    runs and machines; CRC32's low bits collide for 'bright'/'dark') into ``buckets`` embedding rows. Good enough for tiny
    test models, where what matters is that different words give different,
    deterministic token states — e.g. two prompts differing in one word differ
    in exactly one token.
    """

    def __init__(self, *, output_dim: int, dim: int = 64, buckets: int = 4096,
                 max_length: int = 16, project_out: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.output_dim = output_dim
        self.buckets = buckets
        self.max_length = max_length
        self.embed = nn.Embedding(buckets, dim)
        self.proj_out = nn.Linear(dim, output_dim) if project_out else nn.Identity()

    def token_ids(self, text: str) -> list[int]:
        words = re.findall(r"[a-z0-9]+", text.lower())[: self.max_length]
        return [int.from_bytes(hashlib.blake2s(w.encode(), digest_size=4).digest(), "little") % self.buckets
                for w in words]

    def forward(self, texts: list[str], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.zeros(len(texts), self.max_length, dtype=torch.long)
        mask = torch.zeros(len(texts), self.max_length, dtype=torch.bool)
        for row, text in enumerate(texts):
            toks = self.token_ids(text)
            if toks:
                ids[row, : len(toks)] = torch.tensor(toks)
                mask[row, : len(toks)] = True
        ids, mask = ids.to(device), mask.to(device)
        emb = self.proj_out(self.embed(ids)) * mask.unsqueeze(-1)
        return emb, mask


register_conditioner("steerbridge_wordhash", lambda cfg: WordHashConditioner(**cfg))
