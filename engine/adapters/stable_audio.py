"""stable-audio-tools conditional DiT models: Stable Audio Open 1.0 / Small, the demo model, the tiny test model.

:class:`StableAudioAdapter` implements :class:`~steerbridge.engine.adapters.base.ModelAdapter`
for a ``ConditionedDiffusionModelWrapper`` around a ``DiTWrapper``. CFG batches
``[cond, uncond]``; with CFG off for a step the single pass is conditional.
stable-audio-tools itself is reached only through :mod:`steerbridge.engine.adapters.sat`.
"""

from __future__ import annotations

import itertools
import math
import typing as tp
from collections.abc import Callable, Iterator

import torch
from torch import nn

from steerbridge.engine.adapters.sat import sat
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.steering import StepGate

__all__ = ["StableAudioAdapter", "SAMPLERS"]

# Samplers by diffusion objective; the first is the default.
SAMPLERS = {
    "v": ("dpmpp-3m-sde", "dpmpp-2m-sde", "dpmpp-2m", "k-heun", "k-lms", "k-dpm-2", "v-ddim"),
    "rectified_flow": ("euler", "rk4", "dpmpp", "pingpong"),
    "rf_denoiser": ("pingpong", "euler", "rk4", "dpmpp"),
}


class StableAudioAdapter:
    """stable-audio-tools ``ConditionedDiffusionModelWrapper`` around a ``DiTWrapper``."""

    family = "stable-audio-tools"
    sites = ("cross_attn", "block")
    context_kwarg = "context"  # how DiT blocks pass the text tokens to cross_attn (activation patching)

    def __init__(self, model: nn.Module, config: dict[str, tp.Any]) -> None:
        self.model = model
        self.config = config
        self.dit = model.model.model  # DiffusionTransformer
        self.blocks = self.dit.transformer.layers
        self.num_layers = len(self.blocks)
        # The block objects themselves: the `block` site swaps entries of the
        # ModuleList, so `cross_attn` lookups must not go through that list.
        self._block_objs = list(self.blocks)
        self.gate = StepGate()
        self.sample_rate = int(model.sample_rate)
        self.channels = int(config.get("audio_channels", 2))
        self.objective = model.diffusion_objective
        self.options = dict(config.get("steerbridge", {}))
        # A demo model trained with a beat input (engine/demo/beat.py) takes a tempo per render.
        self.takes_bpm = "beat" in getattr(model.conditioner, "conditioners", {})
        first = self.blocks[0]
        if not getattr(first, "cross_attend", False):
            self.sites = ("block",)

    # --- sites -------------------------------------------------------------------------
    def site_slot(self, site: str, layer: int) -> tuple[nn.Module, str]:
        if site == "cross_attn":
            block = self._block_objs[layer]
            if not getattr(block, "cross_attend", False):
                raise EngineError(f"layer {layer} has no cross-attention (final_cross_attn_ix)")
            return block, "cross_attn"
        if site == "block":
            return self.blocks, str(layer)
        raise EngineError(f"unknown site '{site}'; this model has {self.sites}")

    def layer_name(self, layer: int) -> str:
        return str(layer)

    def site_dim(self, site: str, layer: int | None = None) -> int:  # every layer has one width
        if site not in self.sites:
            raise EngineError(f"unknown site '{site}'; this model has {self.sites}")
        return int(self.dit.transformer.dim)

    def parameters(self) -> Iterator[nn.Parameter]:
        return self.dit.parameters()

    # --- sampling ----------------------------------------------------------------------
    @property
    def latent_ratio(self) -> int:
        pre = self.model.pretransform
        return int(pre.downsampling_ratio) if pre is not None else 1

    def latent_length(self, seconds: float) -> int:
        # Round up to what the DiT's patching and the pretransform accept.
        samples = math.ceil(seconds * self.sample_rate)
        quantum = int(self.model.min_input_length)
        samples = math.ceil(samples / quantum) * quantum
        return samples // self.latent_ratio

    def encode(self, prompt: str, *, seconds: float, negative_prompt: str | None = None,
               bpm: float | None = None) -> dict[str, tp.Any]:
        # The beat spans the latent exactly (the DiT would stretch a beat input of another length).
        beat = ({"bpm": float(bpm), "seconds": self.latent_length(seconds) * self.latent_ratio / self.sample_rate}
                if bpm is not None and self.takes_bpm else None)

        def meta(text: str) -> dict[str, tp.Any]:
            return {"prompt": text, "seconds_start": 0.0, "seconds_total": float(seconds),
                    **({"beat": beat} if beat else {})}

        device = next(self.parameters()).device
        inputs = self.model.get_conditioning_inputs(self.model.conditioner([meta(prompt)], device))
        if negative_prompt:
            neg = self.model.conditioner([meta(negative_prompt)], device)
            inputs.update(self.model.get_conditioning_inputs(neg, negative=True))
        dtype = next(self.parameters()).dtype
        return {k: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in inputs.items()}

    def _cfg_active(self, t: torch.Tensor, kw: dict[str, tp.Any]) -> bool:
        """Mirror DiffusionTransformer.forward's decision to batch ``[cond, uncond]``."""
        if kw.get("cfg_scale", 1.0) == 1.0:
            return False
        if kw.get("cross_attn_cond") is None and kw.get("prepend_cond") is None:
            return False
        sigma = torch.sin(t * math.pi / 2) if self.objective == "v" else t
        lo, hi = kw.get("cfg_interval", (0, 1))
        return bool(lo <= float(sigma[0]) <= hi)

    def sample(self, cond: dict[str, tp.Any], *, seed: int, seconds: float, steps: int, cfg_scale: float,
               sampler: str | None = None, on_step: Callable[[int, int], None] | None = None,
               denoiser: Callable[..., torch.Tensor] | None = None) -> torch.Tensor:
        """Sample latents. ``denoiser`` stands in for the DiTWrapper (same call), e.g. the ONNX backend."""
        choices = SAMPLERS.get(self.objective, ())
        sampler = sampler or self.options.get("sampler") or (choices[0] if choices else None)
        if sampler not in choices:
            raise EngineError(f"sampler '{sampler}' does not fit a '{self.objective}' model; use one of {choices}")
        if self.objective == "v" and steps < 2:
            # k-diffusion's multistep solvers fail on a single step (their last step is sigma=0).
            raise EngineError(f"sampler '{sampler}' needs at least 2 steps, got {steps}")
        dit_wrapper = denoiser if denoiser is not None else self.model.model
        gate = self.gate
        # A model config may ask for bf16 autocast of the DiT ("steerbridge": {"autocast": "bf16"}):
        # the demo model was trained that way, and on this CPU a 4 s loop takes 0.33 s, not 0.42. The
        # latents stay fp32 between steps; an external denoiser (ONNX) runs as it is.
        autocast = self.options.get("autocast") == "bf16" and denoiser is None

        def model_fn(x: torch.Tensor, t: torch.Tensor, **kw: tp.Any) -> torch.Tensor:
            cfg = self._cfg_active(t, kw)
            gate.before_forward(rows=x.shape[0] * (2 if cfg else 1), cfg_active=cfg)
            if autocast:
                with torch.autocast(x.device.type, dtype=torch.bfloat16):
                    return dit_wrapper(x, t, **kw).to(x.dtype)
            return dit_wrapper(x, t, **kw)

        def callback(info: dict[str, tp.Any]) -> None:
            gate.step_done()
            if on_step is not None:
                on_step(gate.steps_done, steps)

        device = next(self.parameters()).device
        dtype = next(self.parameters()).dtype
        # The SDE samplers draw from torch's global RNG: seed it, then draw the noise.
        torch.manual_seed(int(seed))
        noise = torch.randn([1, self.model.io_channels, self.latent_length(seconds)], device=device).to(dtype)
        gate.begin_render()
        common = dict(steps=steps, callback=callback, cfg_scale=cfg_scale, batch_cfg=True, rescale_cfg=True,
                      device=device, **cond)
        sampling = sat("sampling")
        with torch.inference_mode():
            if self.objective == "v":
                return sampling.sample_k(model_fn, noise, None, sampler_type=sampler,
                                         sigma_min=self.options.get("sigma_min", 0.03),
                                         sigma_max=self.options.get("sigma_max", 500), rho=1.0, **common)
            return sampling.sample_rf(model_fn, noise, init_data=None, sampler_type=sampler,
                                      dist_shift=self.model.dist_shift, **common)

    def decode(self, latents: torch.Tensor, *, seconds: float) -> torch.Tensor:
        with torch.inference_mode():
            pre = self.model.pretransform
            audio = latents
            if pre is not None:
                # A fixed transform (the demo's mel codec) has buffers but no parameters.
                ref = next(itertools.chain(pre.parameters(), pre.buffers()), latents)
                audio = pre.decode(latents.to(ref.dtype))
        return audio[0, :, : math.ceil(seconds * self.sample_rate)].float()

