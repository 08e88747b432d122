"""The model-family seam: the :class:`ModelAdapter` protocol and the registry of families.

An adapter tells the steering code where each site is (a module per layer),
how classifier-free guidance lays out the batch (``gate.uncond_first``), how
diffusion steps are counted (through its
:class:`~steerbridge.engine.runtime.steering.StepGate`), and how to encode a
prompt, sample and decode. A :class:`Family` adds how a model of it is found
and loaded: a folder is recognised by its files, ``tiny:<family>`` builds a
tiny random-weight model of its real classes. Rendering, loading, extraction,
localisation and the bench only talk to these two interfaces, so a family
plugs in with one :func:`register_family` call and no change to them.
"""

from __future__ import annotations

import typing as tp
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from steerbridge.engine.runtime.errors import EngineError, ModelLoadError
from steerbridge.engine.vocab import DEFAULT_FAMILY

if tp.TYPE_CHECKING:
    import torch
    from torch import nn

    from steerbridge.engine.runtime.steering import StepGate

__all__ = ["ModelAdapter", "AdapterFactory", "Family", "DEFAULT_FAMILY", "register_family", "families", "family",
           "recognise", "adapter_for", "require_onnx", "beat_kwargs"]


class ModelAdapter(tp.Protocol):
    family: str
    sites: tuple[str, ...]
    num_layers: int
    gate: StepGate
    sample_rate: int
    channels: int
    context_kwarg: str  # keyword the blocks pass the text context to the cross_attn site by

    def site_slot(self, site: str, layer: int) -> tuple[nn.Module, str]: ...
    # The site's width at `layer`; with layer=None the width every layer shares (an
    # EngineError on a model whose layers differ in width, as a U-Net's levels do).
    def site_dim(self, site: str, layer: int | None = None) -> int: ...
    def layer_name(self, layer: int) -> str: ...
    def parameters(self) -> Iterator[nn.Parameter]: ...
    def encode(self, prompt: str, *, seconds: float, negative_prompt: str | None) -> dict[str, tp.Any]: ...
    def sample(self, cond: dict[str, tp.Any], *, seed: int, seconds: float, steps: int, cfg_scale: float,
               sampler: str | None, on_step: Callable[[int, int], None] | None,
               denoiser: Callable[..., torch.Tensor] | None = None) -> torch.Tensor: ...
    def decode(self, latents: torch.Tensor, *, seconds: float) -> torch.Tensor: ...


# (model, config) -> adapter around a loaded model.
AdapterFactory = Callable[[tp.Any, dict[str, tp.Any]], ModelAdapter]


@dataclass(frozen=True)
class Family:
    """One model family: its adapter and how its models are found and loaded.

    ``load`` and ``tiny`` return a :class:`~steerbridge.engine.runtime.loaded.LoadedModel`
    whose ``family`` is ``name``; ``recognises`` looks at a folder's small files only.
    """

    name: str
    adapter: AdapterFactory
    recognises: Callable[[Path], bool]
    load: Callable[[Path], tp.Any]
    layout: str  # the folder layout in words, for error messages
    tiny: Callable[[], tp.Any] | None = None
    onnx: bool = False  # `steerbridge export-onnx` supports it


def _stable_audio() -> Family:
    from steerbridge.engine.adapters import sat_source
    from steerbridge.engine.adapters.stable_audio import StableAudioAdapter

    return Family(DEFAULT_FAMILY, StableAudioAdapter, sat_source.recognises, sat_source.load_folder,
                  "model_config.json + model.safetensors (stable-audio-tools)", tiny=sat_source.load_tiny, onnx=True)


def _diffusers(name: str, pipelines: tuple[str, ...], adapter: AdapterFactory, tiny: Callable[[], tp.Any]) -> Family:
    """A diffusers family: a folder whose model_index.json names one of ``pipelines``, loaded strictly."""
    from functools import partial

    from steerbridge.engine.adapters.diffusers_common import load_pipeline_folder, pipeline_class_of

    return Family(name, adapter, lambda folder: pipeline_class_of(folder) in pipelines,
                  partial(load_pipeline_folder, family=name, pipelines=pipelines),
                  f"a diffusers folder: model_index.json naming {' or '.join(pipelines)}", tiny=tiny)


def _sao_diffusers() -> Family:
    from steerbridge.engine.adapters import diffusers_sao as m

    return _diffusers(m.FAMILY, m.PIPELINES, m.SaoDiffusersAdapter, m.build_tiny)


def _ace_step() -> Family:
    from steerbridge.engine.adapters import ace_step as m

    return _diffusers(m.FAMILY, m.PIPELINES, m.AceStepAdapter, m.build_tiny)


def _sa3() -> Family:
    from steerbridge.engine.adapters import stable_audio_3 as m

    return _diffusers(m.FAMILY, m.PIPELINES, m.StableAudio3Adapter, m.build_tiny)


def _audioldm2() -> Family:
    from steerbridge.engine.adapters import audioldm2 as m

    def tiny() -> tp.Any:
        from steerbridge.engine.adapters.audioldm2_tiny import build_tiny

        return build_tiny()

    return _diffusers(m.FAMILY, m.PIPELINES, m.AudioLDM2Adapter, tiny)


def _musicgen(name: str) -> Family:
    from functools import partial

    from steerbridge.engine.adapters import musicgen as m, musicgen_tiny as t

    arch = next(a for a, f in m.ARCHITECTURES.items() if f == name)
    return Family(name, m.MusicgenAdapter, partial(m.recognises, family=name), partial(m.load_folder, family=name),
                  f"a transformers folder: config.json naming {arch}",
                  tiny=t.build_tiny if name == m.FAMILY else t.build_tiny_melody)


# Built-in families are described lazily: a family's code (and its optional
# dependencies) is imported only when a model of it is recognised or loaded.
_FAMILIES: dict[str, Family | Callable[[], Family]] = {DEFAULT_FAMILY: _stable_audio, "sao-diffusers": _sao_diffusers,
                                                       "ace-step": _ace_step, "sa3": _sa3, "audioldm2": _audioldm2,
                                                       "musicgen": lambda: _musicgen("musicgen"),
                                                       "musicgen-melody": lambda: _musicgen("musicgen-melody")}


def register_family(spec: Family | Callable[[], Family], *, name: str | None = None) -> None:
    """Make a family loadable (a :class:`Family`, or ``name`` and a function returning one, imported on use).

    A second registration of the same name replaces the first.
    """
    if isinstance(spec, Family):
        _FAMILIES[spec.name] = spec
    elif name is None:
        raise EngineError("register_family(provider) needs name=... when given a function")
    else:
        _FAMILIES[name] = spec


def families() -> tuple[str, ...]:
    return tuple(_FAMILIES)


def family(name: str) -> Family:
    try:
        spec = _FAMILIES[name]
    except KeyError:
        raise EngineError(f"unknown model family '{name}'; known: {', '.join(_FAMILIES)}") from None
    if not isinstance(spec, Family):
        spec = _FAMILIES[name] = spec()
    return spec


def recognise(folder: Path) -> Family:
    """The family whose files ``folder`` holds; a :class:`ModelLoadError` naming every layout if none."""
    for name in _FAMILIES:
        spec = family(name)
        if spec.recognises(folder):
            return spec
    layouts = "; ".join(f"{n}: {family(n).layout}" for n in _FAMILIES)
    raise ModelLoadError(f"{folder} is not a model folder steerbridge knows. It should hold one of: {layouts}. "
                         "Or name the family: --family FAMILY, or `family = \"FAMILY\"` in a preset's [model].")


def adapter_for(model: tp.Any, config: dict[str, tp.Any], *, family_name: str = DEFAULT_FAMILY) -> ModelAdapter:
    """The adapter of ``family_name`` around a loaded model."""
    return family(family_name).adapter(model, config)


def beat_kwargs(adapter: tp.Any, bpm: float | None) -> dict[str, float]:
    """``encode``'s ``bpm`` keyword where the model has a beat input (``takes_bpm``); for any other model the
    tempo sets a loop's length alone, and its ``encode`` does not take it."""
    return {"bpm": bpm} if bpm is not None and getattr(adapter, "takes_bpm", False) else {}


def require_onnx(name: str) -> None:
    """Refuse, naming the families that have it, the ONNX export/backend for a family without it."""
    if not family(name).onnx:
        ok = [f for f in _FAMILIES if family(f).onnx]
        raise EngineError(f"the ONNX export and backend support the model families {ok}, not '{name}'; "
                          "render this model with --backend torch")
