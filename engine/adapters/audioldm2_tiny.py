"""Random-weight ``AudioLDM2Pipeline`` instances of the real classes: ``tiny:audioldm2`` and the benchmark's U-Net.

Nothing is downloaded: the tokenizers are character-level and built in code
(of the classes the pipeline checks for, byte-level RoBERTa for CLAP and a
Unigram T5, so that both reload from a saved folder as themselves), every model is
built from a config. The text side (CLAP, T5, GPT2) stays tiny in both
builds; :func:`build_published` gives the U-Net AudioLDM2's published
dimensions, which is what the steering overhead benchmark times.
"""

from __future__ import annotations

import string
import typing as tp

import torch
from torch import nn

from steerbridge.engine.adapters.audioldm2 import FAMILY
from steerbridge.engine.adapters.diffusers_common import randomize_zero_inits, require_diffusers, tiny_pipeline
from steerbridge.engine.runtime.loaded import LoadedModel

__all__ = ["build_tiny", "build_published", "build_pipeline"]


def _roberta(max_length: int) -> tp.Any:
    """A byte-level RoBERTa tokenizer with no merges (one token per byte) that reloads as itself.

    transformers 5 rebuilds a RoBERTa tokenizer as RoBERTa's own byte-level BPE
    from the saved vocabulary, so the vocabulary is the byte-level alphabet.
    """
    from tokenizers import pre_tokenizers
    from transformers import RobertaTokenizerFast

    vocab = {s: i for i, s in enumerate(("<s>", "<pad>", "</s>", "<unk>", "<mask>"))}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(ch, len(vocab))
    return RobertaTokenizerFast(vocab=vocab, merges=[], model_max_length=max_length)


def _t5(max_length: int) -> tp.Any:
    """A character-level T5 tokenizer that survives ``save_pretrained``/``from_pretrained``.

    transformers 5 rebuilds a T5 tokenizer as T5's own Unigram model from the
    saved vocabulary, so a WordLevel one does not reload as itself; a Unigram
    model whose pieces are single characters (plus T5's word-start piece
    ``\u2581``) does, and still tokenizes any prompt character by character.
    """
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(ch, -3.0) for ch in string.ascii_letters + string.digits + string.punctuation]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=max_length)


def build_pipeline(unet: nn.Module, *, seed: int, lm_width: int, t5_width: int, mel_bins: int, sample_rate: int,
                   hop: tuple[int, ...], vae_channels: tuple[int, ...], latent: int) -> LoadedModel:
    """A random-weight ``AudioLDM2Pipeline`` around ``unet`` with tiny text encoders, language model and vocoder.

    ``lm_width``/``t5_width`` must be the U-Net's two cross-attention widths;
    the mel spectrogram has ``mel_bins`` bins at ``sample_rate / prod(hop)`` frames a second.
    """
    diffusers = require_diffusers()
    from diffusers.pipelines.audioldm2 import AudioLDM2ProjectionModel
    from transformers import (ClapConfig, ClapFeatureExtractor, ClapModel, GPT2Config, GPT2LMHeadModel,
                              SpeechT5HifiGan, SpeechT5HifiGanConfig, T5Config, T5EncoderModel)

    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = _roberta(max_length=16), _t5(max_length=32)
    clap_width = 16
    clap = ClapModel(ClapConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=24, pad_token_id=tokenizer.pad_token_id,
                         projection_dim=clap_width),
        audio_config=dict(num_mel_bins=16, spec_size=32, patch_size=4, patch_stride=(4, 4), window_size=2,
                          depths=[1, 1], num_attention_heads=[1, 1], hidden_size=16, patch_embeds_hidden_size=8,
                          projection_dim=clap_width, enable_fusion=False),
        projection_dim=clap_width))
    t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=t5_width, d_kv=8, d_ff=2 * t5_width,
                                 num_layers=1, num_heads=2, relative_attention_num_buckets=8, pad_token_id=0,
                                 eos_token_id=1, decoder_start_token_id=0))
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=8, n_embd=lm_width, n_layer=1, n_head=2, n_positions=64))
    projection = AudioLDM2ProjectionModel(text_encoder_dim=clap_width, text_encoder_1_dim=t5_width,
                                          langauge_model_dim=lm_width)
    vae = diffusers.AutoencoderKL(in_channels=1, out_channels=1, latent_channels=latent,
                                  block_out_channels=vae_channels, layers_per_block=1, norm_num_groups=4,
                                  down_block_types=("DownEncoderBlock2D",) * len(vae_channels),
                                  up_block_types=("UpDecoderBlock2D",) * len(vae_channels))
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(model_in_dim=mel_bins, sampling_rate=sample_rate,
                                                    # channels halve per upsampling stage: keep >= 4 at the end
                                                    upsample_initial_channel=max(16, 4 * 2 ** len(hop)),
                                                    upsample_rates=list(hop),
                                                    upsample_kernel_sizes=[2 * r for r in hop],
                                                    resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
                                                    normalize_before=False))
    # HiFi-GAN initialises its convolutions at std 0.01 (for training); random, that makes ~1e-6 audio. PyTorch's
    # default init keeps the signal audible, so a steered tiny render differs audibly from a plain one.
    for m in vocoder.modules():
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
            m.reset_parameters()
    # As the released scheduler/scheduler_config.json sets it.
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195,
                                        beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                                        steps_offset=1)
    randomize_zero_inits(unet, seed)
    return tiny_pipeline("AudioLDM2Pipeline", family=FAMILY, vae=vae, text_encoder=clap, text_encoder_2=t5,
                         projection_model=projection, language_model=lm, tokenizer=tokenizer, tokenizer_2=tokenizer_2,
                         feature_extractor=ClapFeatureExtractor(), unet=unet, scheduler=scheduler, vocoder=vocoder)


def _unet(*, channels: tuple[int, ...], down: tuple[str, ...], up: tuple[str, ...], layers_per_block: int,
          heads: int, lm_width: int, t5_width: int, latent: int, groups: int) -> nn.Module:
    from diffusers.pipelines.audioldm2 import AudioLDM2UNet2DConditionModel

    # [None, GPT2, T5]: a self-attention block, then one reading each context, as in the released model.
    return AudioLDM2UNet2DConditionModel(
        sample_size=64, in_channels=latent, out_channels=latent, down_block_types=down, up_block_types=up,
        block_out_channels=channels, layers_per_block=layers_per_block, norm_num_groups=groups,
        attention_head_dim=heads, cross_attention_dim=[[None, lm_width, t5_width]] * len(channels))


def build_tiny(*, seed: int = 0) -> LoadedModel:
    """``tiny:audioldm2``: 8 text-reading attention layers of widths 16 and 32, 4 kHz mono, 250 mel frames a second.

    Layers: ``down.0.attn.{1,2}`` (16 wide), ``mid.attn.{1,2}`` (32), ``up.1.attn.{1,2,4,5}`` (16).
    """
    lm_width, t5_width, latent = 24, 16, 4
    torch.manual_seed(seed)  # the U-Net is built first: same seed, same weights, same fingerprint
    unet = _unet(channels=(16, 32), down=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1, heads=2, lm_width=lm_width,
                 t5_width=t5_width, latent=latent, groups=8)
    return build_pipeline(unet, seed=seed, lm_width=lm_width, t5_width=t5_width, mel_bins=16, sample_rate=4000,
                          hop=(4, 4), vae_channels=(8, 8), latent=latent)


def build_published(*, seed: int = 0, levels: int = 4) -> LoadedModel:
    """The U-Net at AudioLDM2's published dimensions (``cvssp/audioldm2``'s unet/config.json as released).

    320/640/1280/1280 channels, two resnets per level, 8 heads, cross-attention
    widths [None, 768, 1024], 8 latent channels, 64 mel bins at 100 frames a
    second (16 kHz, hop 160) with a 4x VAE. ``levels`` < 4 keeps the first
    levels only (memory). The text side stays tiny.
    """
    channels = (320, 640, 1280, 1280)[:levels]
    down = ("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",)
    up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1)
    torch.manual_seed(seed)
    unet = _unet(channels=channels, down=down, up=up, layers_per_block=2, heads=8, lm_width=768, t5_width=1024,
                 latent=8, groups=32)
    return build_pipeline(unet, seed=seed, lm_width=768, t5_width=1024, mel_bins=64, sample_rate=16000,
                          hop=(5, 4, 2, 2, 2), vae_channels=(8, 8, 8), latent=8)
