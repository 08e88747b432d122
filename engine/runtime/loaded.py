"""What every family's loader returns, its fingerprint, and the strict weight check they share.

Family loaders (``steerbridge.engine.adapters.*``) build a model and hand back a
:class:`LoadedModel`; :func:`check_state` is the one place that turns a weight
file that does not match its model into an error listing the keys.
"""

from __future__ import annotations

import hashlib
import json
import typing as tp
from dataclasses import dataclass

import torch

from steerbridge.engine.runtime.errors import ModelLoadError
from steerbridge.engine.vocab import DEFAULT_FAMILY

__all__ = ["LoadedModel", "fingerprint_of", "check_state"]


@dataclass
class LoadedModel:
    """A built model (an ``nn.Module`` or a diffusers pipeline) and everything known about where it came from."""

    model: tp.Any
    config: dict[str, tp.Any]
    source: str
    fingerprint: str
    family: str = DEFAULT_FAMILY


def fingerprint_of(config: dict[str, tp.Any], state: dict[str, torch.Tensor]) -> str:
    """Hash of the config, every tensor's name/shape/dtype and a content digest.

    The content digest reads a strided sample of up to 4,096 values per tensor,
    not every byte: it tells different trainings apart in milliseconds even for
    a 4 GB checkpoint, which is what a vector file needs to refuse a mismatch.
    The config carries the family, so two families never share a fingerprint.
    """
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True).encode())
    for name in sorted(state):
        t = state[name].detach()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        flat = t.reshape(-1)
        step = max(1, flat.numel() // 4096)
        h.update(flat[::step].to(torch.float32).cpu().numpy().tobytes())
    return h.hexdigest()[:32]


def check_state(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], *, what: str, fix: str) -> None:
    """Raise :class:`ModelLoadError` listing missing, unexpected and mis-shaped keys of ``state``."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if not (missing or unexpected or misshaped):
        return

    def show(keys: list[str]) -> str:
        return ", ".join(keys[:12]) + (f" ... (+{len(keys) - 12} more)" if len(keys) > 12 else "")

    parts = [what]
    if missing:
        parts.append(f"missing keys ({len(missing)}): {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {show(unexpected)}")
    if misshaped:
        parts.append(f"mis-shaped keys ({len(misshaped)}): {show(misshaped)}")
    parts.append(fix)
    raise ModelLoadError("\n  ".join(parts))
