"""The model-family seam: the :class:`ModelAdapter` protocol and the registry of families.

An adapter tells the steering code where each site is (a module per layer),
how classifier-free guidance lays out the batch, how diffusion steps are
counted (through its :class:`~steerbridge.engine.runtime.steering.StepGate`),
and how to encode a prompt, sample and decode. The steering code only talks to
this interface, so other families (Stable Audio through diffusers, ACE-Step,
AudioLDM2, MusicGen) plug in by registering a factory here, without touching it.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Callable, Iterator

from steerbridge.engine.runtime.errors import EngineError

if tp.TYPE_CHECKING:
    import torch
    from torch import nn

    from steerbridge.engine.runtime.steering import StepGate

__all__ = ["ModelAdapter", "AdapterFactory", "DEFAULT_FAMILY", "register_family", "families", "adapter_for"]


class ModelAdapter(tp.Protocol):
    family: str
    sites: tuple[str, ...]
    num_layers: int
    gate: StepGate
    sample_rate: int
    channels: int

    def site_slot(self, site: str, layer: int) -> tuple[nn.Module, str]: ...
    def site_dim(self, site: str) -> int: ...
    def parameters(self) -> Iterator[nn.Parameter]: ...
    def encode(self, prompt: str, *, seconds: float, negative_prompt: str | None) -> dict[str, tp.Any]: ...
    def sample(self, cond: dict[str, tp.Any], *, seed: int, seconds: float, steps: int, cfg_scale: float,
               sampler: str | None, on_step: Callable[[int, int], None] | None,
               denoiser: Callable[..., torch.Tensor] | None = None) -> torch.Tensor: ...
    def decode(self, latents: torch.Tensor, *, seconds: float) -> torch.Tensor: ...


# (model, config) -> adapter. Factories import their family's code when called,
# so registering a family costs nothing until a model of it is loaded.
AdapterFactory = Callable[["nn.Module", dict[str, tp.Any]], ModelAdapter]


def _stable_audio(model: nn.Module, config: dict[str, tp.Any]) -> ModelAdapter:
    from steerbridge.engine.adapters.stable_audio import StableAudioAdapter

    return StableAudioAdapter(model, config)


DEFAULT_FAMILY = "stable-audio-tools"
_FAMILIES: dict[str, AdapterFactory] = {DEFAULT_FAMILY: _stable_audio}


def register_family(name: str, factory: AdapterFactory) -> None:
    """Make ``name`` loadable; a second registration of the same name replaces the first."""
    _FAMILIES[name] = factory


def families() -> tuple[str, ...]:
    return tuple(_FAMILIES)


def adapter_for(model: nn.Module, config: dict[str, tp.Any], *, family: str = DEFAULT_FAMILY) -> ModelAdapter:
    """The adapter of ``family`` around a loaded model."""
    try:
        factory = _FAMILIES[family]
    except KeyError:
        raise EngineError(f"unknown model family '{family}'; known: {', '.join(_FAMILIES)}") from None
    return factory(model, config)
