"""Stable Audio 3 through diffusers (``StableAudio3Pipeline`` + ``StableAudio3DiTModel``), the mood-vector study's
model.

Sites, per ``StableAudio3DiTBlock`` of ``pipe.transformer.transformer_blocks``:
``cross_attn`` is the block's ``cross_attn`` (over the T5Gemma tokens plus the
duration token, before the residual add), ``block`` the block's output (memory
tokens included); layers 0..N-1.

CFG layout, read from ``StableAudio3Pipeline.__call__`` (diffusers 0.42.1):
``torch.cat([negative_prompt_embeds, prompt_embeds])`` and
``velocity_uncond, velocity_text = velocity.chunk(2)``, so **unconditional
first**; the unconditional row encodes the empty prompt (or the negative
prompt). ``guidance_scale <= 1`` (the default of the distilled model) runs one
conditional row. Steps are counted by ``callback_on_step_end``.
"""

from __future__ import annotations

import typing as tp

import torch

from steerbridge.engine.adapters.diffusers_common import (DiffusersAdapter, char_tokenizer, dit_sites,
                                                          randomize_zero_inits, require_diffusers, tiny_pipeline)
from steerbridge.engine.runtime.loaded import LoadedModel

__all__ = ["FAMILY", "PIPELINES", "StableAudio3Adapter", "build_tiny"]

FAMILY = "sa3"
PIPELINES = ("StableAudio3Pipeline",)


class StableAudio3Adapter(DiffusersAdapter):
    family = FAMILY
    context_kwarg = "context"  # StableAudio3DiTBlock calls cross_attn(x, context=..., context_mask=...)
    step_end_callback = True  # StableAudio3Pipeline has no legacy callback=

    def __init__(self, pipe: tp.Any, config: dict[str, tp.Any]) -> None:
        dit = pipe.transformer
        super().__init__(pipe, config, denoiser=dit,
                         **dit_sites(dit.transformer_blocks, "cross_attn", int(dit.config.embed_dim)))
        self.sample_rate = int(pipe.vae.config.sampling_rate)
        self.channels = int(pipe.vae.config.audio_channels)

    def encode(self, prompt: str, *, seconds: float, negative_prompt: str | None = None) -> dict[str, tp.Any]:
        """T5Gemma hidden states and masks, tokenized as the pipeline's ``encode_prompt`` does."""
        length = min(getattr(self.pipe.tokenizer, "model_max_length", 256), 256)
        states, mask = self._text_states(prompt, length=length)
        cond: dict[str, tp.Any] = {"prompt_embeds": states, "encoder_attention_mask": mask}
        if negative_prompt:
            cond["negative_prompt_embeds"], cond["negative_encoder_attention_mask"] = self._text_states(
                negative_prompt, length=length)
        return cond

    def _run(self, cond: dict[str, tp.Any], seconds: float, **run: tp.Any) -> torch.Tensor:
        return self.pipe(prompt_embeds=cond["prompt_embeds"], encoder_attention_mask=cond["encoder_attention_mask"],
                         negative_prompt_embeds=cond.get("negative_prompt_embeds"),
                         negative_encoder_attention_mask=cond.get("negative_encoder_attention_mask"),
                         duration=seconds, **run).audios

    def decode(self, latents: torch.Tensor, *, seconds: float) -> torch.Tensor:
        with torch.inference_mode():
            audio = self.pipe.vae.decode(latents).sample
        return audio[0, :, : int(seconds * self.sample_rate)].clamp(-1.0, 1.0).float()  # the pipeline's own trim


def build_tiny(*, seed: int = 0, width: int = 32, layers: int = 4, heads: int = 2, sample_rate: int = 8000,
               memory_tokens: int = 4) -> LoadedModel:
    """A random-weight ``StableAudio3Pipeline`` of the real classes: 8 kHz stereo, 250 latent frames a second.

    ``width``/``layers``/``heads`` give the benchmark SA3's published DiT
    dimensions (1536 wide, 24 layers, 24 heads, 64 memory tokens).
    """
    diffusers = require_diffusers()
    from diffusers.pipelines.stable_audio_3 import StableAudio3DurationEmbedder
    from transformers import T5GemmaConfig, T5GemmaEncoderModel
    from transformers.models.t5gemma.configuration_t5gemma import T5GemmaModuleConfig

    torch.manual_seed(seed)
    tokenizer = char_tokenizer(max_length=32)
    text_dim = 16  # the cross-attention context is [text tokens, duration token]: both this wide
    module = T5GemmaModuleConfig(vocab_size=len(tokenizer), hidden_size=text_dim, intermediate_size=32,
                                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                                 query_pre_attn_scalar=8, sliding_window=16).to_dict()
    text_encoder = T5GemmaEncoderModel(T5GemmaConfig(encoder=module, decoder=module, vocab_size=len(tokenizer),
                                                     is_encoder_decoder=False))
    latent = 8
    vae = diffusers.AutoencoderSAME(audio_channels=2, patch_size=8, encoder_channels=16, encoder_c_mults=(2,),
                                    encoder_strides=(4,), encoder_transformer_depths=(1,), latent_dim=latent,
                                    dim_heads=8, sampling_rate=sample_rate)
    duration = StableAudio3DurationEmbedder(output_dim=text_dim, fourier_dim=16)
    transformer = diffusers.StableAudio3DiTModel(io_channels=latent, embed_dim=width, depth=layers, num_heads=heads,
                                                 cond_token_dim=text_dim, global_cond_dim=text_dim,
                                                 local_add_cond_dim=latent + 1, timestep_features_dim=16,
                                                 num_memory_tokens=memory_tokens)
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)
    randomize_zero_inits(transformer, seed)
    # The SAME codec zero-initialises its residual outputs: at 0.02 the tiny decoder barely hears its latents
    # (a 0.1 latent change moved the audio by 3e-4), at 0.2 it does (2e-2).
    randomize_zero_inits(vae, seed, scale=0.2)
    return tiny_pipeline(PIPELINES[0], family=FAMILY, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                         duration_embedder=duration, transformer=transformer, scheduler=scheduler)
