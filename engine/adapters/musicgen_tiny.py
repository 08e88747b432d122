"""Random-weight MusicGen and MusicGen-Melody of the real transformers classes (tests, benchmarks).

``tiny:musicgen`` and ``tiny:musicgen-melody`` build a T5 text encoder, an
EnCodec codec and a 4-layer decoder with random weights in well under a second
(no download, no musical meaning). :func:`build_random` takes decoder dims, so
the benchmark can build a size-realistic decoder (MusicGen small: 1024 wide,
24 layers, 16 heads, 4 codebooks of 2048, 50 frames/s at 32 kHz).

Constraints the configs honour: the decoder's ``vocab_size`` equals the
codebook size (its pad/BOS token is the one past it), EnCodec's
``target_bandwidths`` give at least ``num_codebooks`` quantizers, and the
codebooks get random entries (EnCodec initialises them to zeros).
"""

from __future__ import annotations

import typing as tp

import torch

from steerbridge.engine.adapters.musicgen import FAMILY, MELODY, loaded_bundle
from steerbridge.engine.runtime.loaded import LoadedModel

__all__ = ["build_tiny", "build_tiny_melody", "build_random"]


def build_random(*, family: str = FAMILY, width: int = 32, layers: int = 4, heads: int = 2, codebooks: int = 4,
                 codebook_size: int = 64, sample_rate: int = 8000, hop: tuple[int, ...] = (4, 4, 4),
                 max_positions: int = 2048, seed: int = 0) -> LoadedModel:
    """A random-weight MusicGen (or Melody) with the given decoder dims; ``source`` is ``tiny:<family>``."""
    import transformers
    from transformers import EncodecConfig, T5Config

    from steerbridge.engine.adapters.diffusers_common import char_tokenizer
    from steerbridge.engine.adapters.musicgen import TEXT_TOKENS

    transformers.logging.set_verbosity_error()  # pad id == vocab size is MusicGen's convention, not a mistake
    torch.manual_seed(seed)
    tokenizer = char_tokenizer(max_length=TEXT_TOKENS)
    t5 = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=4,
                  relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    bandwidth = 8.0  # with these ratios: 10 quantizers >= codebooks
    codec = EncodecConfig(sampling_rate=sample_rate, audio_channels=1, num_filters=4, codebook_size=codebook_size,
                          codebook_dim=8, hidden_size=8, upsampling_ratios=list(hop), num_residual_layers=1,
                          num_lstm_layers=1, target_bandwidths=[bandwidth])
    dec_kw: dict[str, tp.Any] = dict(vocab_size=codebook_size, hidden_size=width, num_hidden_layers=layers,
                                     num_attention_heads=heads, ffn_dim=4 * width, num_codebooks=codebooks,
                                     max_position_embeddings=max_positions, pad_token_id=codebook_size,
                                     bos_token_id=codebook_size, decoder_start_token_id=codebook_size)
    if family == MELODY:
        dec = transformers.MusicgenMelodyDecoderConfig(**dec_kw)
        config = transformers.MusicgenMelodyConfig(text_encoder=t5.to_dict(), audio_encoder=codec.to_dict(),
                                                   decoder=dec.to_dict(), num_chroma=12, chroma_length=4)
        model = transformers.MusicgenMelodyForConditionalGeneration(config)
    else:
        dec = transformers.MusicgenDecoderConfig(**dec_kw)
        config = transformers.MusicgenConfig(text_encoder=t5.to_dict(), audio_encoder=codec.to_dict(),
                                             decoder=dec.to_dict())
        model = transformers.MusicgenForConditionalGeneration(config)
    # EnCodec initialises its codebooks to zeros: every code would decode to the same audio.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in model.audio_encoder.named_buffers():
            if name.endswith(".embed"):
                buf.copy_(torch.randn(buf.shape, generator=gen))
    return loaded_bundle(model, tokenizer, family=family, source=f"tiny:{family}")


def build_tiny() -> LoadedModel:
    return build_random(family=FAMILY)


def build_tiny_melody() -> LoadedModel:
    return build_random(family=MELODY)
