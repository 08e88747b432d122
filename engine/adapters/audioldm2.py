"""AudioLDM2 through diffusers (``AudioLDM2Pipeline`` + ``AudioLDM2UNet2DConditionModel``): a U-Net, not a DiT.

Layers. Each U-Net level holds attention blocks (``Transformer2DModel``), named
as diffusers names the module: ``down.<i>.attn.<j>``, ``mid.attn.<j>``,
``up.<i>.attn.<j>`` (a ``.<k>`` is added when one block stacks several
transformer blocks). AudioLDM2 gives every attention slot one block per entry
of ``cross_attention_dim`` (the released model: ``[None, 768, 1024]``): ``None``
is a self-attention-only block, which never reads the text and is not a layer
here; the GPT2 ("language of audio") block and the T5 text block are. Layers
are numbered in the order the U-Net runs them (down, mid, up); the study's
functional layers sit in the up blocks.

Sites, per text-reading transformer block: ``cross_attn`` is its ``attn2``
(the attention over the GPT2 or T5 tokens, output before the residual add),
``block`` the transformer block's output (the attention block's token stream,
``[batch, H*W, channels]``, before ``proj_out`` folds it back into the
feature map). Both are channels-last, so steering adds ``alpha * v`` to every
position. **Widths differ per level** (the channels of that level, 320/640/1280
in the released model): vectors hold one width per layer (see
:mod:`steerbridge.engine.runtime.vectors`).

CFG layout, read from ``AudioLDM2Pipeline.encode_prompt``/``__call__``
(diffusers 0.42.1): ``torch.cat([negative_prompt_embeds, prompt_embeds])`` (and
the same for the mask and the GPT2 states), ``torch.cat([latents] * 2)`` and
``noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)``: **unconditional
first**; the unconditional row encodes the empty prompt (or the negative
prompt) through both text encoders and the language model. ``guidance_scale
<= 1`` runs one conditional row. Steps are counted by the per-step ``callback``.

Conditioning is two text encoders (CLAP's text tower, pooled to one token, and
T5), projected and run through GPT2 for ``max_new_tokens`` steps; the U-Net
reads the GPT2 states (``encoder_hidden_states``) and the T5 states
(``encoder_hidden_states_1``). :meth:`AudioLDM2Adapter.encode` runs the
pipeline's own ``encode_prompt`` once for the prompt and its negative, so the
GPT2 generation is not repeated every render. T5 pads a prompt to its own token
count; inside :meth:`AudioLDM2Adapter.uniform_prompts` (activation patching, the
prompt-blend baseline) the T5 states are zero-padded, mask off, to the
tokenizer's ``model_max_length``.
"""

from __future__ import annotations

import typing as tp

import torch
from torch import nn

from steerbridge.engine.adapters.diffusers_common import DiffusersAdapter, UniformPrompts

__all__ = ["FAMILY", "PIPELINES", "AudioLDM2Adapter", "attention_layers"]

FAMILY = "audioldm2"
PIPELINES = ("AudioLDM2Pipeline",)
_T5_KEYS = (("prompt_embeds", "attention_mask"), ("negative_prompt_embeds", "negative_attention_mask"))


def attention_layers(unet: nn.Module) -> list[tuple[str, nn.Module, nn.Module, int]]:
    """``(name, transformer block, its parent list, index)`` of every text-reading transformer block, in run order."""
    levels = [(f"down.{i}", b) for i, b in enumerate(unet.down_blocks)]
    levels += [("mid", unet.mid_block)] if unet.mid_block is not None else []
    levels += [(f"up.{i}", b) for i, b in enumerate(unet.up_blocks)]
    out = []
    for prefix, level in levels:
        attentions = getattr(level, "attentions", None) or []
        dims = tuple(getattr(level, "cross_attention_dim", ()) or ())
        for j, attn in enumerate(attentions):
            if not dims or dims[j % len(dims)] is None:  # a self-attention-only block: never reads the text
                continue
            blocks = attn.transformer_blocks
            for k in range(len(blocks)):
                out.append((f"{prefix}.attn.{j}" + (f".{k}" if len(blocks) > 1 else ""), blocks[k], blocks, k))
    return out


class AudioLDM2Adapter(UniformPrompts, DiffusersAdapter):
    family = FAMILY

    def __init__(self, pipe: tp.Any, config: dict[str, tp.Any]) -> None:
        layers = attention_layers(pipe.unet)
        widths = [int(block.attn2.to_out[0].out_features) for _, block, _, _ in layers]
        super().__init__(pipe, config, denoiser=pipe.unet,
                         slots={"cross_attn": [(block, "attn2") for _, block, _, _ in layers],
                                "block": [(parent, str(k)) for _, _, parent, k in layers]},
                         dims={"cross_attn": widths, "block": list(widths)}, names=[n for n, *_ in layers])
        vocoder = pipe.vocoder.config
        self.sample_rate = int(vocoder.sampling_rate)
        self.channels = 1
        lm = pipe.language_model
        self.max_new_tokens = int(getattr(lm.config, "max_new_tokens", None)
                                  or getattr(getattr(lm, "generation_config", None), "max_new_tokens", None) or 8)

    def encode(self, prompt: str, *, seconds: float, negative_prompt: str | None = None) -> dict[str, tp.Any]:
        """The pipeline's ``encode_prompt`` (CLAP + T5 -> projection -> GPT2), prompt and negative in one call."""
        pipe = self.pipe
        device = next(pipe.unet.parameters()).device
        with torch.inference_mode():
            t5, mask, lm = pipe.encode_prompt(prompt, device, 1, True, negative_prompt=negative_prompt or None,
                                              max_new_tokens=self.max_new_tokens)
        # encode_prompt batches [negative, prompt] for CFG (the layout sample() hands back to the pipeline)
        cond = {"negative_prompt_embeds": t5[:1], "prompt_embeds": t5[1:], "negative_attention_mask": mask[:1],
                "attention_mask": mask[1:], "negative_generated_prompt_embeds": lm[:1],
                "generated_prompt_embeds": lm[1:]}
        if self._uniform:
            pad = int(pipe.tokenizer_2.model_max_length) - t5.shape[1]
            for states, m in _T5_KEYS:
                cond[states] = torch.nn.functional.pad(cond[states], (0, 0, 0, pad))
                cond[m] = torch.nn.functional.pad(cond[m], (0, pad), value=0)
        return cond

    def _run(self, cond: dict[str, tp.Any], seconds: float, **run: tp.Any) -> torch.Tensor:
        return self.pipe(**cond, audio_length_in_s=seconds, **run).audios

    def decode(self, latents: torch.Tensor, *, seconds: float) -> torch.Tensor:
        """The pipeline's post-processing: VAE to a mel spectrogram, the HiFi-GAN vocoder, its crop (mono)."""
        pipe = self.pipe
        with torch.inference_mode():
            mel = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
            audio = pipe.mel_spectrogram_to_waveform(mel)
        return audio[:1, : int(seconds * self.sample_rate)].float()

