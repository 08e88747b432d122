"""MusicGen and MusicGen-Melody through transformers: an autoregressive family (no diffusion).

One *step* is one generated frame (one decoder call per frame, the KV cache
holds the rest), so progress, cancel, ``start_step`` and per-step vectors count
frames. Progress is reported in the request's ``steps`` units (frame ``k`` of
``N`` reports ``k * steps // N``) so the CLI bar, the scheduler and the panel
work unchanged; cancel is polled after every frame.

Sites, per decoder layer of ``model.decoder.model.decoder.layers``:

* ``block``: the residual stream after the layer (the study's site);
* ``cross_attn`` (MusicGen only): the output of the cross-attention over the
  T5 states, before its residual add. It is called with the text states as
  ``key_value_states``, so activation patching substitutes the text keys and
  values (at the first frame; later frames reuse the cached ones).

A site module must return a tensor ``[rows, T, d]``. Both the cross-attention
and the MusicGen-Melody decoder layer return tuples, so at those places the
adapter installs :class:`TensorView` (the tensor) inside :class:`TupleShim`
(the tuple the caller unpacks); the computation is unchanged. The model's own
MusicGen decoder layer returns a tensor and is used as is.

CFG layout, read from transformers 5.24 (``modeling_musicgen.py``,
``_prepare_text_encoder_kwargs_for_generation`` and
``prepare_inputs_for_generation``): the text states are
``concatenate([states, zeros_like(states)])`` and the decoder ids
``repeat((2, 1))``; ``ClassifierFreeGuidanceLogitsProcessor`` splits
``cond, uncond = scores.split(batch)``. So the batch is ``[cond, uncond]``:
conditional first (``tests/test_musicgen.py`` checks it on the model). Note:
in that version MusicGen's ``generate`` runs the first decoder call twice (a
prefill whose result it discards); both run at step 0.

The study (MusicGen steering with DiffMean) adds its vectors in both guidance
branches, so ``default_cfg_mode`` is ``"both"`` for this family.
"""

from __future__ import annotations

import json
import math
import os
import typing as tp
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from steerbridge.engine.runtime.errors import EngineError, ModelLoadError
from steerbridge.engine.runtime.loaded import LoadedModel, fingerprint_of
from steerbridge.engine.runtime.steering import SiteModule, StepGate

__all__ = ["FAMILY", "MELODY", "ARCHITECTURES", "MusicgenBundle", "MusicgenAdapter", "TensorView", "TupleShim",
           "recognises", "load_folder", "loaded_bundle"]

FAMILY = "musicgen"
MELODY = "musicgen-melody"
ARCHITECTURES = {"MusicgenForConditionalGeneration": FAMILY, "MusicgenMelodyForConditionalGeneration": MELODY}
TEXT_TOKENS = 64  # MusicGen pads the prompt to a fixed length (masked); MusicGen-Melody does not pad (see encode)


class MusicgenBundle:
    """The transformers model and its tokenizer: what ``LoadedModel.model`` holds for this family."""

    def __init__(self, model: nn.Module, tokenizer: tp.Any) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def to(self, device: str | torch.device) -> "MusicgenBundle":
        self.model.to(device)
        return self


class TensorView(SiteModule):
    """The first element of a module's tuple output, as a site (the tensor ``[rows, T, d]``)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *args: tp.Any, **kwargs: tp.Any) -> torch.Tensor:
        return self.inner(*args, **kwargs)[0]


class TupleShim(SiteModule):
    """Gives the caller back the ``(tensor, None)`` it unpacks, the tensor from a :class:`TensorView`."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = TensorView(inner)

    def forward(self, *args: tp.Any, **kwargs: tp.Any) -> tuple[torch.Tensor, None]:
        return self.inner(*args, **kwargs), None


def _shim(parent: nn.Module, name: str) -> tuple[nn.Module, str]:
    """Install (once) a :class:`TupleShim` at ``parent.name``; the slot of its tensor view."""
    current = getattr(parent, name)
    if not isinstance(current, TupleShim):
        setattr(parent, name, TupleShim(current))
    return getattr(parent, name), "inner"


class _FrameClock:
    """transformers' stopping-criteria hook: called once after every generated frame (never stops early)."""

    def __init__(self, done: Callable[[], None]) -> None:
        self._done = done

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: tp.Any) -> torch.Tensor:
        self._done()  # may raise RenderCancelled: generate stops there
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class MusicgenAdapter:
    """Sites, frame gate, prompt encoding and generation for a loaded :class:`MusicgenBundle`."""

    context_kwarg = "key_value_states"  # MusicgenAttention receives the text states by this keyword
    default_cfg_mode = "both"

    def __init__(self, bundle: MusicgenBundle, config: dict[str, tp.Any]) -> None:
        self.bundle = bundle
        self.config = config
        model = bundle.model
        self.family = config["family"]
        self.melody = self.family == MELODY
        self.decoder = model.decoder
        layers = model.decoder.model.decoder.layers
        dim = int(model.decoder.config.hidden_size)
        if self.melody:  # the layer returns (hidden, attn weights) and the decoder reads [0]
            slots = {"block": [_shim(layers, str(i)) for i in range(len(layers))]}
        else:
            slots = {"block": [(layers, str(i)) for i in range(len(layers))],
                     "cross_attn": [_shim(layer, "encoder_attn") for layer in layers]}
        self._slots = slots
        self.sites = tuple(slots)
        self.num_layers = len(layers)
        self._dim = dim
        self.gate = StepGate()
        self.gate.uncond_first = False  # [cond, uncond], see the module docstring
        self.sample_rate = int(model.config.audio_encoder.sampling_rate)
        self.channels = int(model.decoder.config.audio_channels)
        self.frame_rate = float(model.config.audio_encoder.frame_rate)
        self.num_codebooks = int(model.decoder.config.num_codebooks)
        self.max_positions = int(model.decoder.config.max_position_embeddings)
        self.top_k = int(getattr(model.generation_config, "top_k", None) or 250)  # MusicGen's released default
        # Decoder positions before the first frame at step 0 (Melody: chroma + text), set by encode.
        self.prefix_length = 0
        self.eos_position: int | None = None
        # What DiffMean records by default (steerbridge.engine.extraction.positions): the study's EOS state
        # where the text is prepended, else the generated frames.
        self.default_position = "eos" if self.melody else "frames"

    # -- sites ------------------------------------------------------------------------------------------------------
    def site_slot(self, site: str, layer: int) -> tuple[nn.Module, str]:
        if site not in self._slots:
            raise EngineError(f"unknown site '{site}'; this {self.family} model has {self.sites}")
        if not 0 <= layer < self.num_layers:
            raise EngineError(f"layer {layer} is out of range 0..{self.num_layers - 1}")
        return self._slots[site][layer]

    def site_dim(self, site: str, layer: int | None = None) -> int:  # every layer has one width
        if site not in self._slots:
            raise EngineError(f"unknown site '{site}'; this {self.family} model has {self.sites}")
        return self._dim

    def layer_name(self, layer: int) -> str:
        return f"decoder.layers.{layer}"

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.decoder.parameters()

    def positions(self, mode: str, *, step: int, length: int) -> slice | None:
        """Which time positions of a site call at ``step`` (``length`` positions) a recorder keeps.

        ``frames``: the newest position (the state that predicts the frame being
        generated); ``eos``: MusicGen-Melody's prompt end-of-sequence token at
        step 0 (where the text is prepended), nothing at later steps.
        """
        if mode == "frames":
            return slice(length - 1, length)
        if mode == "eos":
            if not self.melody or self.eos_position is None:
                raise EngineError("the EOS position exists where the text is prepended to the decoder's sequence "
                                  "(musicgen-melody); for musicgen use --position frames")
            return slice(self.eos_position, self.eos_position + 1) if step == 0 and length > 1 else None
        raise EngineError(f"position '{mode}' is not one of frames, eos")

    # -- rendering -------------------------------------------------------------------------------------------------
    def encode(self, prompt: str, *, seconds: float, negative_prompt: str | None = None) -> dict[str, tp.Any]:
        """Token ids and mask. MusicGen pads to ``TEXT_TOKENS`` (masked; equal lengths let patching swap
        contexts); Melody does not pad, since its text sits in the decoder's sequence (the positions shift)."""
        if negative_prompt:
            raise EngineError("MusicGen's guidance uses a null text, not a negative prompt; leave it unset")
        tok = self.bundle.tokenizer
        if self.melody:
            ids = tok(prompt, return_tensors="pt")
        else:
            ids = tok(prompt, padding="max_length", max_length=TEXT_TOKENS, truncation=True, return_tensors="pt")
        mask = ids.attention_mask
        n_text = int(mask.sum())
        if self.melody:
            self.prefix_length = int(self.bundle.model.config.chroma_length) + int(mask.shape[1])
            self.eos_position = int(self.bundle.model.config.chroma_length) + n_text - 1
        return {"input_ids": ids.input_ids, "attention_mask": mask}

    def frames_for(self, seconds: float) -> int:
        """Decoder calls for ``seconds`` of audio: the frames plus the codebook delay pattern's tail."""
        return math.ceil(seconds * self.frame_rate) + self.num_codebooks - 1

    def sample(self, cond: dict[str, tp.Any], *, seed: int, seconds: float, steps: int, cfg_scale: float,
               sampler: str | None = None, on_step: Callable[[int, int], None] | None = None,
               denoiser: tp.Any = None) -> torch.Tensor:
        """Generate ``seconds`` of audio (a waveform ``[1, channels, samples]``), deterministic for ``seed``."""
        from transformers.generation import StoppingCriteriaList

        if denoiser is not None:
            raise EngineError("MusicGen runs in torch only (no ONNX backend)")
        if sampler is not None:
            raise EngineError(f"MusicGen samples its tokens (top-k {self.top_k}); leave the sampler unset "
                              f"instead of '{sampler}'")
        frames = self.frames_for(seconds)
        if frames + self.prefix_length + 1 > self.max_positions:
            most = (self.max_positions - self.prefix_length - self.num_codebooks) / self.frame_rate
            raise EngineError(f"this model generates at most {most:.1f} s ({self.max_positions} positions); "
                              f"asked for {seconds:g} s")
        cfg = cfg_scale > 1.0  # MusicGen batches CFG only for guidance_scale > 1
        rows = 2 if cfg else 1
        gate = self.gate
        gate.begin_render()
        gate.before_forward(rows=rows, cfg_active=cfg)

        def frame_done() -> None:
            gate.step_done()
            gate.before_forward(rows=rows, cfg_active=cfg)
            if on_step is not None:
                on_step(gate.steps_done * steps // frames, steps)

        model = self.bundle.model
        device = next(model.parameters()).device
        forked = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=forked), torch.inference_mode():
            torch.manual_seed(int(seed))  # generate samples with the global generator
            audio = model.generate(input_ids=cond["input_ids"].to(device),
                                   attention_mask=cond["attention_mask"].to(device), do_sample=True,
                                   top_k=self.top_k, guidance_scale=float(cfg_scale), max_new_tokens=frames,
                                   stopping_criteria=StoppingCriteriaList([_FrameClock(frame_done)]))
        return audio

    def decode(self, latents: torch.Tensor, *, seconds: float) -> torch.Tensor:
        """``generate`` already decoded the codes with EnCodec: crop to the asked length."""
        return latents[0, :, : int(round(seconds * self.sample_rate))].float()


# -- loading ---------------------------------------------------------------------------------------------------------
def _architecture(folder: Path) -> str | None:
    try:
        archs = json.loads((folder / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return None
    return next((a for a in archs if a in ARCHITECTURES), None)


def recognises(folder: Path, *, family: str = FAMILY) -> bool:
    arch = _architecture(folder)
    return arch is not None and ARCHITECTURES[arch] == family


def loaded_bundle(model: nn.Module, tokenizer: tp.Any, *, family: str, source: str,
                  state: dict[str, torch.Tensor] | None = None) -> LoadedModel:
    """Wrap a built model; the fingerprint covers the family, the architecture, the dims and every weight."""
    model.eval().requires_grad_(False)
    dec = model.config.decoder
    config = {"family": family, "architecture": type(model).__name__,
              "decoder": {"hidden_size": dec.hidden_size, "layers": dec.num_hidden_layers,
                          "codebooks": dec.num_codebooks, "vocab_size": dec.vocab_size},
              "sample_rate": model.config.audio_encoder.sampling_rate}
    if state is None:
        state = model.state_dict()
    return LoadedModel(MusicgenBundle(model, tokenizer), config, source, fingerprint_of(config, state), family=family)


def load_folder(folder: Path, *, family: str = FAMILY) -> LoadedModel:
    """Strictly load a transformers MusicGen folder: config.json, *.safetensors, tokenizer files.

    The model is built from its config and every weight is checked key by key
    (missing, unexpected and mis-shaped keys are listed); nothing is downloaded;
    pickle weights are refused.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    from steerbridge.engine.adapters.diffusers_common import _build_module  # noqa: PLC2701 - the shared strict loader

    arch = _architecture(folder)
    if arch is None or ARCHITECTURES[arch] != family:
        want = next(a for a, f in ARCHITECTURES.items() if f == family)
        raise ModelLoadError(f"{folder}/config.json does not name {want} ({family}); a transformers MusicGen folder "
                             "holds config.json, model.safetensors and the tokenizer files")
    fix = ("Copy the whole model folder, tokenizer files (tokenizer.json or spiece.model) included; steerbridge "
           "never downloads.")
    # Checked first: without these files transformers quietly builds a T5 tokenizer with an empty vocabulary.
    if not any((folder / f).is_file() for f in ("tokenizer.json", "spiece.model")):
        raise ModelLoadError(f"{folder} has no tokenizer.json or spiece.model. {fix}")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{folder} has no usable tokenizer ({exc}). {fix}") from exc
    model, state = _build_module(getattr(transformers, arch), folder, family)
    gen = folder / "generation_config.json"
    if gen.is_file():
        model.generation_config = transformers.GenerationConfig.from_pretrained(str(folder), local_files_only=True)
    return loaded_bundle(model, tokenizer, family=family, source=str(folder.resolve()), state=state)
