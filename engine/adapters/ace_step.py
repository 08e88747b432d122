"""ACE-Step 1.5 through diffusers (``AceStepPipeline`` + ``AceStepTransformer1DModel``).

Sites, per ``AceStepTransformerBlock`` of ``pipe.transformer.layers``:
``cross_attn`` is the block's ``cross_attn`` (attention over the packed
lyric + timbre + text sequence, before the residual add; the study found the
functional layers 7-8 here), ``block`` the block's output; layers 0..N-1.

CFG layout, read from ``AceStepPipeline.__call__`` (diffusers 0.42.1): the
batch is ``torch.cat([encoder_hidden_states, null_encoder_hidden_states])``
with ``vt_cond, vt_uncond = model_output[0].chunk(2)``, so **conditional first**,
and the unconditional row is the learned ``null_condition_emb``, not an empty
prompt. Guidance is APG (``normalized_guidance``), not plain CFG, and runs only
for steps whose ``1 - t`` lies in ``[cfg_interval_start, cfg_interval_end]``;
steerbridge passes the full interval ``[0, 1]``, so every step is batched when
``guidance_scale > 1`` (and never on turbo checkpoints, whose guidance is
distilled). Steps are counted by the pipeline's per-step ``callback``.

The pipeline takes prompt strings, not embeddings: :meth:`AceStepAdapter.encode`
runs the pipeline's own ``encode_prompt`` (same arguments as ``__call__``), and
``sample`` hands those tensors back to it for the length of one call.

The pipeline pads a prompt to its own token count (``padding="longest"``), so
two prompts give contexts of different lengths. Activation patching and the
prompt-blend baseline need one length; inside :meth:`AceStepAdapter.uniform_prompts`
the text states are zero-padded (mask off) to ``max_text_length`` (256), for
every run of the experiment alike. Outside it, encoding is the pipeline's.
"""

from __future__ import annotations

import math
import typing as tp

import torch

from steerbridge.engine.adapters.diffusers_common import (DiffusersAdapter, UniformPrompts, char_tokenizer, dit_sites,
                                                          randomize_zero_inits, require_diffusers, tiny_pipeline)
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.loaded import LoadedModel

__all__ = ["FAMILY", "PIPELINES", "AceStepAdapter", "build_tiny"]

FAMILY = "ace-step"
PIPELINES = ("AceStepPipeline",)
_MAX_TEXT = 256  # the pipeline's max_text_length default: encode_prompt truncates there


class AceStepAdapter(UniformPrompts, DiffusersAdapter):
    family = FAMILY

    def __init__(self, pipe: tp.Any, config: dict[str, tp.Any]) -> None:
        dit = pipe.transformer
        super().__init__(pipe, config, denoiser=dit, **dit_sites(dit.layers, "cross_attn", int(dit.config.hidden_size)))
        self.gate.uncond_first = False  # [cond, null]: see the module docstring
        self.sample_rate = int(pipe.sample_rate)
        self.channels = int(pipe.vae.config.audio_channels)

    def encode(self, prompt: str, *, seconds: float, negative_prompt: str | None = None) -> dict[str, tp.Any]:
        """The pipeline's own ``encode_prompt`` for a text2music render (no lyrics)."""
        if negative_prompt:
            raise EngineError("ACE-Step guides against its learned null condition, not a negative prompt; "
                              "leave the negative prompt unset for this model")
        pipe = self.pipe
        device = next(pipe.text_encoder.parameters()).device
        with torch.inference_mode():
            text, text_mask, lyric, lyric_mask = pipe.encode_prompt(
                prompt=prompt, lyrics="", device=device, audio_duration=float(seconds),
                instruction=pipe._get_task_instruction(task_type="text2music"))  # noqa: SLF001 - as __call__ does
        if self._uniform:
            pad = _MAX_TEXT - text.shape[1]
            text = torch.nn.functional.pad(text, (0, 0, 0, pad))
            text_mask = torch.nn.functional.pad(text_mask, (0, pad), value=False)
        return {"text_hidden_states": text, "text_attention_mask": text_mask, "lyric_hidden_states": lyric,
                "lyric_attention_mask": lyric_mask, "prompt": prompt}

    def _guided(self, cfg_scale: float) -> bool:
        return cfg_scale > 1.0 and not self.pipe.is_turbo  # the pipeline's do_classifier_free_guidance

    def _run(self, cond: dict[str, tp.Any], seconds: float, **run: tp.Any) -> torch.Tensor:
        pipe = self.pipe
        encoded = (cond["text_hidden_states"], cond["text_attention_mask"], cond["lyric_hidden_states"],
                   cond["lyric_attention_mask"])
        # The pipeline encodes its prompt string itself; for this call it gets the tensors from encode()
        # (which may have been blended by the prompt-blend baseline). An instance attribute, removed after.
        pipe.encode_prompt = lambda **_: encoded
        try:
            return pipe(prompt=cond["prompt"], lyrics="", audio_duration=seconds, cfg_interval_start=0.0,
                        cfg_interval_end=1.0, **run).audios
        finally:
            del pipe.encode_prompt

    def decode(self, latents: torch.Tensor, *, seconds: float) -> torch.Tensor:
        """The pipeline's post-processing: VAE decode, anti-clip, peak normalised to -1 dBFS, then the crop."""
        with torch.inference_mode():
            audio = self.pipe.vae.decode(latents.transpose(1, 2)).sample.float()
        peak = audio.abs().amax(dim=[1, 2], keepdim=True)
        if torch.any(peak > 1.0):
            audio = audio / peak.clamp(min=1.0)
        audio = audio * (10.0 ** (-1.0 / 20.0) / audio.abs().amax(dim=[1, 2], keepdim=True).clamp(min=1e-6))
        return audio[0, :, : math.ceil(seconds * self.sample_rate)]


def build_tiny(*, seed: int = 0, width: int = 32, layers: int = 4, heads: int = 2, head_dim: int = 16,
               sample_rate: int = 2000) -> LoadedModel:
    """A random-weight ``AceStepPipeline`` of the real classes: 2 kHz stereo, 62.5 latent frames a second.

    The low rate keeps the timbre encoder's 30 s of silence latents (run every
    render) short.

    ``width``/``layers``/``heads``/``head_dim`` give the benchmark ACE-Step 1.5's
    published dimensions (2048 wide, 24 layers, 16 heads of 128).
    """
    diffusers = require_diffusers()
    from diffusers.pipelines.ace_step import AceStepConditionEncoder
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(seed)
    tokenizer = char_tokenizer(max_length=256)
    text_dim = 16
    text_encoder = Qwen3Model(Qwen3Config(vocab_size=len(tokenizer), hidden_size=text_dim, intermediate_size=32,
                                          num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                          head_dim=8))
    attn = dict(num_attention_heads=heads, num_key_value_heads=max(1, heads // 2), head_dim=head_dim,
                sliding_window=16)
    acoustic = 8
    condition = AceStepConditionEncoder(hidden_size=width, intermediate_size=2 * width, text_hidden_dim=text_dim,
                                        timbre_hidden_dim=acoustic, num_lyric_encoder_hidden_layers=1,
                                        num_timbre_encoder_hidden_layers=1, **attn)
    # in_channels: noisy latents + the context (source latents and chunk mask), each `acoustic` wide.
    transformer = diffusers.AceStepTransformer1DModel(hidden_size=width, intermediate_size=2 * width,
                                                      num_hidden_layers=layers, in_channels=3 * acoustic,
                                                      audio_acoustic_hidden_dim=acoustic, patch_size=2, **attn)
    vae = diffusers.AutoencoderOobleck(encoder_hidden_size=8, downsampling_ratios=[4, 8], channel_multiples=[1, 2],
                                       decoder_channels=8, decoder_input_channels=acoustic, audio_channels=2,
                                       sampling_rate=sample_rate)
    # As the ACE-Step converter registers it: the pipeline feeds its own shifted sigmas verbatim.
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0)
    randomize_zero_inits(transformer, seed)
    return tiny_pipeline(PIPELINES[0], family=FAMILY, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                         transformer=transformer, condition_encoder=condition, scheduler=scheduler)
