"""The demo model's compact audio representation: normalised log-mel, decoded by Griffin-Lim or HiFi-GAN.

Two scales. ``slaney`` (the second-generation model): 22.05 kHz, hop 256, 80
Slaney mel bands to 8 kHz -- exactly the mel the pretrained universal HiFi-GAN
was trained on, so ``decoder: hifigan`` can invert it (see
:mod:`steerbridge.engine.demo.hifigan`); Griffin-Lim stays the fast default.
``warped`` (the first generation, below) is kept so its folders still load.

Why not a learned autoencoder: it would cost training time we would rather
spend on the diffusion model, and a fixed transform has no weights to trust.
Why these numbers: 16 kHz audio, 1024-point STFT with hop 250 (so 4 s is 256
frames, ``downsampling_ratio`` is 250, and the DiT can use patch size 4: 64
tokens per 4 s, half the compute of patch 2) and 96 bands on a *warped* mel scale
``log(1 + f / break_hz)`` with a 250 Hz break, not mel's 700 Hz: bands are
about a semitone wide from ~300 Hz to 2 kHz, where the corpus's chords and
melodies live, so major and minor thirds stay apart (a 64-band mel blurred
them: mode AUC 0.84 after the round trip in the prototype).

Each band is standardised with a mean and std fitted on the corpus
(:meth:`MelCodec.fit`) and stored as buffers, so latents are roughly unit
variance for the diffusion model and the statistics travel in the model's
state dict. Decoding spreads each band's energy back over the FFT bins it
covers (a weighted average of the band-level estimates, non-negative and well
conditioned) and recovers phase with fast Griffin-Lim (momentum 0.99) from a
fixed seed, so decoding is deterministic. Not the pseudo-inverse: the narrow
low bands make the filterbank ill-conditioned, and for spectrograms a model
generates (never exactly consistent) the pseudo-inverse's large alternating
weights put huge energy near 250 Hz -- every generated clip decoded dark and
~60 dB too loud, hiding the model's (correct) brightness in the latents. A
final safety limiter scales a clip down only if it would clip.
"""

from __future__ import annotations

import math
import typing as tp

import torch

from steerbridge.engine.adapters.sat import sat
from steerbridge.engine.runtime.components import register_pretransform

__all__ = ["DECODERS", "SCALES", "MelCodec", "slaney_mel_filterbank", "warped_mel_filterbank"]

SCALES = ("warped", "slaney")
# griffin-lim: fast, phasey; hifigan: the pretrained universal HiFi-GAN (needs the
# slaney scale at 22.05 kHz / hop 256, its training mel), slower, far cleaner.
DECODERS = ("griffin-lim", "hifigan")


def warped_mel_filterbank(*, sample_rate: int, n_fft: int, n_bands: int, f_min: float,
                          break_hz: float) -> torch.Tensor:
    """Triangular filters [n_bands, n_fft // 2 + 1], evenly spaced in log(1 + f / break_hz).

    A triangle narrower than one FFT bin is widened to one bin, so no band is
    empty at low frequencies.
    """
    warp = lambda f: math.log1p(f / break_hz)  # noqa: E731
    unwarp = lambda s: break_hz * math.expm1(s)  # noqa: E731
    edges = torch.linspace(warp(f_min), warp(sample_rate / 2), n_bands + 2, dtype=torch.float64)
    hz = torch.tensor([unwarp(float(s)) for s in edges], dtype=torch.float64)
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    bin_hz = float(bins[1])
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (bins - lo) / torch.clamp(mid - lo, min=bin_hz)
    down = (hi - bins) / torch.clamp(hi - mid, min=bin_hz)
    return torch.clamp(torch.minimum(up, down), min=0.0).to(torch.float32)


def slaney_mel_filterbank(*, sample_rate: int, n_fft: int, n_bands: int, f_min: float,
                          f_max: float) -> torch.Tensor:
    """librosa's default mel filterbank (Slaney scale and area normalisation) [n_bands, n_fft // 2 + 1].

    Re-implemented (librosa is not a runtime dependency); the HiFi-GAN decoder
    was trained on exactly these filters (``tests/test_demo_v2.py`` compares
    with librosa where it is installed)."""
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0

    def to_mel(f: float) -> float:
        return f / f_sp if f < min_log_hz else min_log_mel + math.log(f / min_log_hz) / logstep

    def to_hz(m: torch.Tensor) -> torch.Tensor:
        return torch.where(m < min_log_mel, m * f_sp, min_log_hz * torch.exp(logstep * (m - min_log_mel)))

    mel_f = to_hz(torch.linspace(to_mel(f_min), to_mel(f_max), n_bands + 2, dtype=torch.float64))
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    fdiff = torch.diff(mel_f)
    ramps = mel_f[:, None] - bins[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.to(torch.float32)


_NNLS_ITERS = 10


def _spread_matrix(fb: torch.Tensor) -> torch.Tensor:
    """[bins, bands]: a bin's magnitude as the weighted average of the flat-band estimates
    ``mel_b / sum(fb_b)`` of the bands covering it (weights ``fb[b, f]``); 0 where none does."""
    flat = fb / fb.sum(dim=1, keepdim=True).clamp(min=1e-12)  # per-bin level of a flat band
    cover = fb.sum(dim=0).clamp(min=1e-12)  # total weight on each bin
    return (flat / cover).T.contiguous()


class MelCodec(sat("pretransforms").Pretransform):  # type: ignore[misc]
    """A stable-audio-tools ``Pretransform``: audio [B, C, N] <-> latents [B, n_bands, N / hop]."""

    decoders = DECODERS  # what a render request may pick (engine/runtime/render.py)

    def __init__(self, *, sample_rate: int, n_bands: int = 96, n_fft: int = 1024, hop: int = 250,
                 f_min: float = 30.0, break_hz: float = 250.0, griffin_lim_iters: int = 32,
                 io_channels: int = 1, floor: float = 1e-3, scale: str = "warped", f_max: float | None = None,
                 decoder: str = "griffin-lim") -> None:
        super().__init__(enable_grad=False, io_channels=io_channels, is_discrete=False)
        if scale not in SCALES:
            raise ValueError(f"mel scale {scale!r} is not one of {SCALES}")
        self.sample_rate = sample_rate
        self.n_fft, self.hop, self.iters, self.floor = n_fft, hop, griffin_lim_iters, floor
        self.encoded_channels = n_bands
        self.downsampling_ratio = hop
        self.scale = scale
        self.decoder = decoder  # settable at run time; checked when decoding
        if scale == "warped":
            fb = warped_mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_bands=n_bands,
                                       f_min=f_min, break_hz=break_hz)
        else:
            fb = slaney_mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_bands=n_bands, f_min=f_min,
                                       f_max=f_max or sample_rate / 2)
        # Derived constants are non-persistent: rebuilt from the config, not
        # stored; only the fitted statistics belong in the state dict.
        self.register_buffer("fb", fb, persistent=False)
        self.register_buffer("fb_inv", _spread_matrix(fb), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("band_mean", torch.zeros(n_bands))
        self.register_buffer("band_std", torch.ones(n_bands))

    def _stft(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.stft(audio, self.n_fft, self.hop, window=self.window, center=True,
                          return_complex=True)

    @torch.autocast("cpu", enabled=False)
    def log_mel(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, C, N] -> un-normalised log-mel [B, n_bands, N // hop] (channels averaged)."""
        if audio.shape[-1] % self.hop:
            raise ValueError(f"audio length {audio.shape[-1]} is not a multiple of hop {self.hop}")
        frames = audio.shape[-1] // self.hop
        mag = self._stft(audio.float().mean(dim=1)).abs()[..., :frames]
        return torch.log(self.floor + torch.einsum("mf,bft->bmt", self.fb, mag))

    def encode(self, x: torch.Tensor, **_: tp.Any) -> torch.Tensor:
        mel = self.log_mel(x)
        return (mel - self.band_mean[:, None]) / self.band_std[:, None]

    @torch.no_grad()
    def fit(self, audio: torch.Tensor) -> None:
        """Set the per-band statistics from a batch of corpus audio [B, C, N]."""
        mel = self.log_mel(audio)
        self.band_mean.copy_(mel.mean(dim=(0, 2)))
        self.band_std.copy_(mel.std(dim=(0, 2)).clamp(min=1e-3))

    @torch.autocast("cpu", enabled=False)  # bf16 magnitudes would cost decode quality, not speed
    def decode(self, z: torch.Tensor, **_: tp.Any) -> torch.Tensor:
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder {self.decoder!r} is not one of {DECODERS}")
        z = z.float()
        if self.decoder == "hifigan":
            return self._hifigan(z * self.band_std[:, None] + self.band_mean[:, None])
        mel = torch.exp(z * self.band_std[:, None] + self.band_mean[:, None]) - self.floor
        mel = mel.clamp(min=0.0)
        mag = torch.einsum("fm,bmt->bft", self.fb_inv, mel)
        # Non-negative least squares by multiplicative updates (Lee & Seung): sharpens
        # the flat-band start toward a spectrum whose bands give back `mel` (pitch
        # inside wide bands), and can never go negative or blow up.
        target = torch.einsum("mf,bmt->bft", self.fb, mel)
        for _ in range(_NNLS_ITERS):
            rebuilt = torch.einsum("mf,bft->bmt", self.fb, mag)
            mag = mag * target / (torch.einsum("mf,bmt->bft", self.fb, rebuilt) + 1e-9)
        mag = torch.cat([mag, mag[..., -1:]], dim=-1)  # STFT has frames + 1 columns
        audio = self._limit(self._griffin_lim(mag, length=z.shape[-1] * self.hop))
        return audio.unsqueeze(1).repeat(1, self.io_channels, 1)

    def _hifigan(self, log_mel: torch.Tensor) -> torch.Tensor:
        from steerbridge.engine.demo.hifigan import load_generator

        if self.scale != "slaney" or self.sample_rate != 22050 or self.hop != 256:
            raise ValueError("the HiFi-GAN decoder needs the slaney mel at 22.05 kHz, hop 256 (the mel it was "
                             "trained on); this model's codec differs: use the griffin-lim decoder")
        with torch.inference_mode():  # fp32: bf16 autocast made this generator ~150x slower on CPU
            audio = load_generator()(log_mel)[:, 0, : log_mel.shape[-1] * self.hop]
        return self._limit(audio).unsqueeze(1).repeat(1, self.io_channels, 1)

    def _limit(self, audio: torch.Tensor) -> torch.Tensor:
        # Safety limiter: guidance can push a clip past the corpus' loudest; scale
        # such a clip to a 0.99 peak (others untouched, so levels stay comparable).
        peak = audio.abs().amax(dim=-1, keepdim=True)
        return audio / torch.clamp(peak / 0.99, min=1.0)

    def _griffin_lim(self, mag: torch.Tensor, *, length: int) -> torch.Tensor:
        # One fixed initial phase shared by every row: a clip decodes the same
        # whatever its position in the batch.
        gen = torch.Generator().manual_seed(0)
        phase = torch.rand(mag.shape[1:], generator=gen).to(mag.device) * (2 * math.pi)
        angles = torch.polar(torch.ones_like(mag), phase.expand_as(mag))
        prev = torch.zeros_like(angles)
        momentum = 0.99 / (1 + 0.99)
        for _ in range(self.iters):
            audio = torch.istft(mag * angles, self.n_fft, self.hop, window=self.window, length=length)
            rebuilt = self._stft(audio)
            angles = rebuilt - momentum * prev
            angles = angles / (angles.abs() + 1e-12)
            prev = rebuilt
        return torch.istft(mag * angles, self.n_fft, self.hop, window=self.window, length=length)


register_pretransform("steerbridge_mel", lambda cfg, sr: MelCodec(sample_rate=sr, **cfg))
