"""What every diffusers-based family shares: strict folder loading, fingerprints, a tokenizer with no download,
and the adapter base class (sites, the step gate driven from the pipeline's per-step callback).

A diffusers model folder holds ``model_index.json`` naming the pipeline class
and one sub-folder per component. Loading here is strict, unlike
``DiffusionPipeline.from_pretrained``: each weight-bearing component is built
from its config and its safetensors are checked key by key (missing,
unexpected or mis-shaped keys are an error listing them); a text encoder,
tokenizer or other stock ``transformers`` part missing from the folder comes
from the local Hugging Face cache (:mod:`steerbridge.engine.adapters.hf_cache`);
nothing is ever downloaded; pickle (``.bin``) weights are refused.

``diffusers`` and ``transformers`` are an optional extra (``pip install
steerbridge[diffusers]``); they are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import string
import typing as tp
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from steerbridge.engine.adapters.hf_cache import component_folder
from steerbridge.engine.runtime.errors import EngineError, ModelLoadError
from steerbridge.engine.runtime.loaded import LoadedModel, check_state, fingerprint_of
from steerbridge.engine.runtime.steering import StepGate

__all__ = ["UniformPrompts", "require_diffusers", "char_tokenizer", "randomize_zero_inits", "pipeline_class_of",
           "load_pipeline_folder", "loaded_pipeline", "tiny_pipeline", "dit_sites", "DiffusersAdapter"]

_INSTALL = "pip install 'steerbridge[diffusers]' (diffusers and transformers)"


def require_diffusers() -> tp.Any:
    """``import diffusers`` with a message that says how to install it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
    try:
        return importlib.import_module("diffusers")
    except ImportError as exc:
        raise ModelLoadError(f"this model family needs diffusers, which is not installed: {exc}. Run {_INSTALL}.") \
            from exc


def char_tokenizer(max_length: int) -> tp.Any:
    """A character-level fast tokenizer built in code, for tiny test pipelines (no vocabulary download).

    Every printable character is a token, so any prompt tokenizes, different
    prompts give different ids, and padding to ``max_length`` gives every
    prompt the same length (which activation patching needs). A pipeline that
    checks its tokenizer's class gets that class's own model instead (see
    ``audioldm2_tiny``): transformers 5 reloads a named class by rebuilding it.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(("<pad>", "</s>", "<unk>"))}
    for ch in string.ascii_lowercase + string.digits + string.punctuation + " \n":
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.normalizer = normalizers.Lowercase()
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length, pad_token="<pad>",
                                   eos_token="</s>", unk_token="<unk>")


def randomize_zero_inits(module: nn.Module, seed: int, *, scale: float = 0.02) -> None:
    """Give zero-initialised projections small random weights (tiny test models only).

    diffusers zero-initialises some output projections; in a random model they
    would make every layer after them ignore the prompt.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.numel() > 1 and not torch.any(p):
                p.copy_(torch.randn(p.shape, generator=gen) * scale)


def pipeline_class_of(folder: Path) -> str | None:
    """The ``_class_name`` of a diffusers folder's ``model_index.json`` (None: not a diffusers folder)."""
    try:
        return str(json.loads((folder / "model_index.json").read_text()).get("_class_name"))
    except (OSError, ValueError, AttributeError):
        return None


def _component_class(name: str, library: str, cls_name: str) -> type:
    if library in ("diffusers", "transformers"):
        module = importlib.import_module(library)
    else:  # diffusers names classes that live in a pipeline package by that package
        module = importlib.import_module(f"diffusers.pipelines.{library}")
    try:
        return getattr(module, cls_name)
    except AttributeError:
        raise ModelLoadError(f"component '{name}' names {library}.{cls_name}, which this diffusers/transformers "
                             "version does not have") from None


def _read_weights(sub: Path, name: str) -> dict[str, torch.Tensor]:
    files = sorted(sub.glob("*.safetensors"))
    if not files:
        pickles = sorted(p.name for p in sub.glob("*.bin")) + sorted(p.name for p in sub.glob("*.ckpt"))
        hint = f" ({', '.join(pickles)} are pickle files, which steerbridge never reads)" if pickles else ""
        raise ModelLoadError(f"{sub} holds no .safetensors weights for component '{name}'{hint}. "
                             "Convert them to safetensors or fetch the safetensors release of the model.")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    state[key] = f.get_tensor(key)
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types
            raise ModelLoadError(f"cannot read {path}: {exc}. It must be a safetensors file.") from exc
    return state


def _tied_aliases(model: nn.Module) -> dict[str, set[str]]:
    """State-dict keys that share storage (tied embeddings): saving keeps one of each group."""
    groups: dict[tuple[int, int], set[str]] = {}
    for key, t in model.state_dict(keep_vars=False).items():
        if t.numel():
            groups.setdefault((t.data_ptr(), t.numel()), set()).add(key)
    return {k: g for g in groups.values() if len(g) > 1 for k in g}


def _build_module(cls: type, sub: Path, name: str) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Build ``cls`` from its config in ``sub`` and load its safetensors strictly."""
    if hasattr(cls, "config_class") and hasattr(cls.config_class, "from_pretrained"):  # transformers
        model = cls(cls.config_class.from_pretrained(str(sub), local_files_only=True))
    else:  # diffusers ModelMixin
        model = cls.from_config(cls.load_config(str(sub), local_files_only=True))
    state = _read_weights(sub, name)
    expected = model.state_dict()
    aliases = _tied_aliases(model)
    for key in list(expected):  # a tied key is present when any key of its group is
        if key not in state and any(a in state for a in aliases.get(key, ())):
            state[key] = state[next(a for a in aliases[key] if a in state)]
    check_state(expected, state, what=f"{sub} does not match its config ({cls.__name__}):",
                fix="Use the config.json that was released with these weights.")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    return model.eval().requires_grad_(False), state


def load_pipeline_folder(folder: Path, *, family: str, pipelines: tuple[str, ...]) -> LoadedModel:
    """Strictly load a diffusers folder whose pipeline class is one of ``pipelines``."""
    diffusers = require_diffusers()
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{folder} has no readable model_index.json ({exc}); a diffusers model folder "
                             "holds model_index.json and one sub-folder per component") from exc
    cls_name = index.get("_class_name")
    if cls_name not in pipelines:
        if isinstance(cls_name, str) and cls_name != "DiffusionPipeline" and hasattr(diffusers, cls_name):
            raise ModelLoadError(f"{folder} holds a {cls_name}, not a {' or '.join(pipelines)} ({family})")
        # A class diffusers does not have (a fine-tune's own subclass) or the generic DiffusionPipeline: the
        # folder does not say its family, so only a named family gets here; build that family's pipeline.
        cls_name = pipelines[0]
    components: dict[str, tp.Any] = {}
    state: dict[str, torch.Tensor] = {}
    for name, spec in index.items():
        if name.startswith("_"):
            continue
        if not (isinstance(spec, list) and len(spec) == 2):
            raise ModelLoadError(f"model_index.json entry '{name}' is {spec!r}, expected [library, class]")
        library, comp_cls = spec
        if library is None:
            components[name] = None
            continue
        cls = _component_class(name, library, comp_cls)
        sub = component_folder(folder, name, spec, pipeline=cls_name, cls=cls)  # or the local HF cache's
        try:
            if isinstance(cls, type) and issubclass(cls, nn.Module):
                components[name], part = _build_module(cls, sub, name)
                state.update({f"{name}.{k}": v for k, v in part.items()})
            else:  # tokenizer, scheduler, feature extractor: from the folder only
                components[name] = cls.from_pretrained(str(sub), local_files_only=True)
        except ModelLoadError:
            raise
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ModelLoadError(f"cannot load component '{name}' ({comp_cls}) from {sub}: {exc}") from exc
    try:
        pipe = getattr(diffusers, cls_name)(**components)
    except TypeError as exc:  # another family's components (a wrong --family / preset `family`)
        raise ModelLoadError(f"the components of {folder} ({', '.join(components)}) do not make a {cls_name}, "
                             f"the pipeline of family '{family}' ({exc}); check the family you named") from exc
    return loaded_pipeline(pipe, family=family, source=str(folder.resolve()), state=state)


def loaded_pipeline(pipe: tp.Any, *, family: str, source: str,
                    state: dict[str, torch.Tensor] | None = None) -> LoadedModel:
    """Wrap a built pipeline; its fingerprint covers the family, the classes and every weight."""
    pipe.set_progress_bar_config(disable=True)  # steerbridge reports progress per step itself
    comps = {k: v for k, v in pipe.components.items()}
    if state is None:
        state = {f"{k}.{n}": t for k, m in comps.items() if isinstance(m, nn.Module)
                 for n, t in m.state_dict().items()}
    config = {"family": family, "pipeline": type(pipe).__name__,
              "components": {k: type(v).__name__ for k, v in sorted(comps.items()) if v is not None}}
    return LoadedModel(pipe, config, source, fingerprint_of(config, state), family=family)


def tiny_pipeline(pipeline: str, *, family: str, **components: tp.Any) -> LoadedModel:
    """A random-weight diffusers ``pipeline`` from built ``components``, frozen, as ``tiny:<family>``."""
    pipe = getattr(require_diffusers(), pipeline)(**components)
    for m in components.values():
        if isinstance(m, nn.Module):
            m.eval().requires_grad_(False)
    return loaded_pipeline(pipe, family=family, source=f"tiny:{family}")


def dit_sites(blocks: nn.ModuleList, attn: str, width: int) -> dict[str, tp.Any]:
    """:class:`DiffusersAdapter` ``slots``/``dims`` of a DiT: ``cross_attn`` is each block's ``attn`` child,
    ``block`` each block's output, all ``width`` wide."""
    slots = {"cross_attn": [(b, attn) for b in blocks], "block": [(blocks, str(i)) for i in range(len(blocks))]}
    return {"slots": slots, "dims": {"cross_attn": width, "block": width}}


class UniformPrompts:
    """For families whose text states vary in length per prompt: inside :meth:`uniform_prompts`
    ``encode`` pads every prompt to one length, because activation patching and the
    prompt-blend baseline swap or mix text states between prompts."""

    _uniform = False

    @contextlib.contextmanager
    def uniform_prompts(self) -> Iterator[None]:
        self._uniform = True
        try:
            yield
        finally:
            self._uniform = False


class DiffusersAdapter:
    """Sites, step gate and parameters for a diffusers pipeline; a family adds encode/sample/decode.

    ``slots[site]`` lists ``(parent, attribute)`` per layer, collected once from
    the original module tree (so swapping a block does not hide its attention);
    ``dims[site]`` is the site's width, or a list of one width per layer (U-Net).
    diffusers batches CFG as ``[uncond, cond]``, hence ``gate.uncond_first``.
    """

    family = ""
    context_kwarg = "encoder_hidden_states"
    step_end_callback = False  # the pipeline counts steps through callback_on_step_end, not callback=

    def __init__(self, pipe: tp.Any, config: dict[str, tp.Any], *, denoiser: nn.Module,
                 slots: dict[str, list[tuple[nn.Module, str]]], dims: dict[str, int | list[int]],
                 names: list[str] | None = None) -> None:
        self.pipe = pipe
        self.config = config
        self.denoiser = denoiser
        self._slots = slots
        self._dims = dims
        self.sites = tuple(slots)
        self.num_layers = len(next(iter(slots.values())))
        self._names = names or [str(i) for i in range(self.num_layers)]
        self.gate = StepGate()
        self.gate.uncond_first = True

    def site_slot(self, site: str, layer: int) -> tuple[nn.Module, str]:
        if site not in self._slots:
            raise EngineError(f"unknown site '{site}'; this model has {self.sites}")
        if not 0 <= layer < self.num_layers:
            raise EngineError(f"layer {layer} is out of range 0..{self.num_layers - 1}")
        return self._slots[site][layer]

    def site_dim(self, site: str, layer: int | None = None) -> int:
        if site not in self._dims:
            raise EngineError(f"unknown site '{site}'; this model has {self.sites}")
        dims = self._dims[site]
        if isinstance(dims, int):
            return dims
        if layer is not None:
            self.site_slot(site, layer)  # range check
            return dims[layer]
        if len(set(dims)) > 1:
            raise EngineError(f"site '{site}' of this {self.family} model has a different width per layer "
                              f"({dims}); ask for one layer's width")
        return dims[0]

    def layer_name(self, layer: int) -> str:
        return self._names[layer]

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.denoiser.parameters()

    @staticmethod
    def _no_external(sampler: str | None, denoiser: tp.Any, scheduler: tp.Any) -> None:
        if denoiser is not None:
            raise EngineError("this model family runs its denoiser in torch only (no ONNX backend)")
        if sampler is not None and sampler != type(scheduler).__name__:
            raise EngineError(f"this model samples with its pipeline's scheduler ({type(scheduler).__name__}); "
                              f"leave the sampler unset instead of '{sampler}'")

    def sample(self, cond: dict[str, tp.Any], *, seed: int, seconds: float, steps: int, cfg_scale: float,
               sampler: str | None = None, on_step: Callable[[int, int], None] | None = None,
               denoiser: tp.Any = None) -> torch.Tensor:
        """Run the pipeline to latents, each step counted by the gate; the family's :meth:`_run` calls it.

        Refuses what a pipeline cannot run; the CFG batch is 2 rows, or 1 when
        :meth:`_guided` says the pipeline skips guidance.
        """
        self._no_external(sampler, denoiser, self.pipe.scheduler)
        cfg = self._guided(cfg_scale)
        done = self._steps(rows=2 if cfg else 1, cfg=cfg, steps=steps, on_step=on_step)
        gen = torch.Generator(device=next(self.parameters()).device).manual_seed(int(seed))
        if self.step_end_callback:
            def step_end(_pipe: tp.Any, _i: int, _t: tp.Any, _kw: dict[str, tp.Any]) -> dict[str, tp.Any]:
                done()
                return {}

            callback: dict[str, tp.Any] = {"callback_on_step_end": step_end}
        else:
            callback = {"callback": lambda *_: done(), "callback_steps": 1}
        return self._run(cond, float(seconds), num_inference_steps=steps, guidance_scale=cfg_scale, generator=gen,
                         output_type="latent", **callback)

    def _guided(self, cfg_scale: float) -> bool:
        """Whether the pipeline batches CFG rows at ``cfg_scale`` (its ``do_classifier_free_guidance``)."""
        return cfg_scale > 1.0

    def _run(self, cond: dict[str, tp.Any], seconds: float, **run: tp.Any) -> torch.Tensor:
        """Call the pipeline on ``cond`` for ``seconds`` with the shared ``run`` arguments; return the latents."""
        raise NotImplementedError

    def _text_states(self, text: str, *, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The pipeline's text encoder's hidden states and mask for ``text`` padded to ``length`` tokens."""
        pipe = self.pipe
        device = next(pipe.text_encoder.parameters()).device
        ids = pipe.tokenizer(text, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        mask = ids.attention_mask.to(device)
        with torch.inference_mode():
            return pipe.text_encoder(ids.input_ids.to(device), attention_mask=mask)[0], mask

    def _steps(self, *, rows: int, cfg: bool, steps: int,
               on_step: Callable[[int, int], None] | None) -> Callable[[], None]:
        """Start a render; return the function to call after each finished diffusion step.

        A pipeline's batch layout is fixed for a whole render, so the row gates are
        set before the first model call and renewed after each step (for start_step).
        """
        gate = self.gate
        gate.begin_render()
        gate.before_forward(rows=rows, cfg_active=cfg)

        def done() -> None:
            gate.step_done()
            gate.before_forward(rows=rows, cfg_active=cfg)
            if on_step is not None:
                on_step(gate.steps_done, steps)

        return done
