"""Stable Audio Open through diffusers (``StableAudioPipeline``, as the TADA code runs it).

Sites, per ``StableAudioDiTBlock`` of ``pipe.transformer.transformer_blocks``:
``cross_attn`` is ``attn2`` (the attention over the T5 tokens, before the
residual add), ``block`` the block's output; layers are numbered 0..N-1.

CFG layout, read from ``StableAudioPipeline.__call__`` (diffusers 0.42.1): the
text states are ``torch.cat([negative, prompt])`` (zeros when there is no
negative prompt) and the latents ``torch.cat([latents] * 2)``; the output is
split ``noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)``. So the batch
is ``[uncond, cond]``: unconditional first. ``guidance_scale <= 1`` runs one
conditional row. Steps are counted by the pipeline's per-step ``callback``.

The pipeline always denoises the transformer's whole window
(``transformer.config.sample_size`` latents, 47 s for SAO 1.0) and crops the
audio to the requested length; steerbridge keeps that behaviour.
"""

from __future__ import annotations

import math
import typing as tp

import torch

from steerbridge.engine.adapters.diffusers_common import (DiffusersAdapter, char_tokenizer, dit_sites,
                                                          randomize_zero_inits, require_diffusers, tiny_pipeline)
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.loaded import LoadedModel

__all__ = ["FAMILY", "PIPELINES", "SaoDiffusersAdapter", "build_tiny"]

FAMILY = "sao-diffusers"
PIPELINES = ("StableAudioPipeline",)


class SaoDiffusersAdapter(DiffusersAdapter):
    family = FAMILY

    def __init__(self, pipe: tp.Any, config: dict[str, tp.Any]) -> None:
        dit = pipe.transformer
        super().__init__(pipe, config, denoiser=dit, **dit_sites(dit.transformer_blocks, "attn2", int(dit.inner_dim)))
        self.sample_rate = int(pipe.vae.config.sampling_rate)
        self.channels = int(pipe.vae.config.audio_channels)
        ratio = math.prod(pipe.vae.config.downsampling_ratios)
        self.max_seconds = int(dit.config.sample_size) * ratio / self.sample_rate

    def encode(self, prompt: str, *, seconds: float, negative_prompt: str | None = None) -> dict[str, tp.Any]:
        """T5 hidden states and masks (the pipeline projects them and adds the timing tokens)."""
        length = self.pipe.tokenizer.model_max_length
        states, mask = self._text_states(prompt, length=length)
        cond: dict[str, tp.Any] = {"prompt_embeds": states, "attention_mask": mask}
        if negative_prompt:
            neg, neg_mask = self._text_states(negative_prompt, length=length)
            # As the pipeline does for a negative prompt: padding tokens become the null embedding.
            cond["negative_prompt_embeds"] = torch.where(neg_mask.bool().unsqueeze(2), neg, 0.0)
            cond["negative_attention_mask"] = neg_mask
        return cond

    def _run(self, cond: dict[str, tp.Any], seconds: float, **run: tp.Any) -> torch.Tensor:
        if seconds > self.max_seconds:
            raise EngineError(f"this model renders at most {self.max_seconds:g} s (its transformer's window); "
                              f"asked for {seconds:g} s")
        return self.pipe(prompt_embeds=cond["prompt_embeds"], attention_mask=cond["attention_mask"],
                         negative_prompt_embeds=cond.get("negative_prompt_embeds"),
                         negative_attention_mask=cond.get("negative_attention_mask"), audio_end_in_s=seconds,
                         **run).audios

    def decode(self, latents: torch.Tensor, *, seconds: float) -> torch.Tensor:
        with torch.inference_mode():
            audio = self.pipe.vae.decode(latents).sample
        return audio[0, :, : int(seconds * self.sample_rate)].float()  # the pipeline's own crop


def build_tiny(*, seed: int = 0, width: int = 32, layers: int = 4, heads: int = 2, sample_rate: int = 8000,
               window: int = 1024) -> LoadedModel:
    """A random-weight ``StableAudioPipeline`` of the real classes: 8 kHz stereo, a 4.1 s window.

    The defaults are tiny (tests run in seconds); ``width``/``layers``/``heads``
    give size-realistic configs to the benchmark (SAO 1.0: 1536 wide, 24
    layers, 24 heads).
    """
    diffusers = require_diffusers()
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tokenizer = char_tokenizer(max_length=32)
    text_dim = 32
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=text_dim, d_kv=8, d_ff=64,
                                           num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                                           pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    cond_dim = 32
    projection = diffusers.StableAudioProjectionModel(text_encoder_dim=text_dim, conditioning_dim=cond_dim,
                                                     min_value=0, max_value=int(window * 32 / sample_rate) + 1)
    latent = 8
    transformer = diffusers.StableAudioDiTModel(
        sample_size=window, in_channels=latent, num_layers=layers, attention_head_dim=width // heads,
        num_attention_heads=heads, num_key_value_attention_heads=max(1, heads // 2), out_channels=latent,
        cross_attention_dim=width, time_proj_dim=32, global_states_input_dim=2 * cond_dim,
        cross_attention_input_dim=cond_dim)
    vae = diffusers.AutoencoderOobleck(encoder_hidden_size=8, downsampling_ratios=[4, 8], channel_multiples=[1, 2],
                                       decoder_channels=8, decoder_input_channels=latent, audio_channels=2,
                                       sampling_rate=sample_rate)
    scheduler = diffusers.CosineDPMSolverMultistepScheduler(sigma_min=0.3, sigma_max=500, sigma_data=1.0,
                                                            sigma_schedule="exponential", solver_order=2,
                                                            prediction_type="v_prediction")
    randomize_zero_inits(transformer, seed)
    return tiny_pipeline(PIPELINES[0], family=FAMILY, vae=vae, text_encoder=text_encoder, projection_model=projection,
                         tokenizer=tokenizer, transformer=transformer, scheduler=scheduler)

