"""Model-free audio descriptors: what steering and prompt-following are measured with.

All functions take float32 audio ``[samples]`` or ``[channels, samples]``
(channels are averaged) and a sample rate, and use only numpy/scipy, so the
numbers do not depend on the model that made the audio:

- :func:`spectral_centroid` (Hz): brightness; energy-weighted over frames so
  silent frames do not pull it towards noise.
- :func:`onset_rate` (onsets/s): tempo and note density, from peaks of the
  positive log-spectral flux.
- :func:`tempo_bpm`: periodicity of that flux (autocorrelation, 60-200 BPM,
  with a mild preference for 120 BPM against octave errors).
- :func:`mode_score`: major minus minor, from chroma correlated with the 12
  major and 12 minor triad templates frame by frame (positive = major).
- :func:`loudness_db`: RMS level in dBFS of the non-silent frames.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage, signal

__all__ = [
    "Descriptors",
    "describe",
    "spectral_centroid",
    "onset_rate",
    "tempo_bpm",
    "sustain",
    "mode_score",
    "triad_mode",
    "loudness_db",
    "chroma",
]

_N_FFT = 2048  # ~8 Hz bins at 16 kHz: semitones resolvable from ~130 Hz up (chroma)
_HOP = 256


@dataclasses.dataclass(frozen=True)
class Descriptors:
    centroid_hz: float
    onset_rate: float
    tempo_bpm: float
    mode_score: float
    loudness_db: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def _mono(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise ValueError(f"audio must be [samples] or [channels, samples], got shape {audio.shape}")
    return x


def _power(audio: np.ndarray, sr: int, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrogram [frames, bins] and bin frequencies."""
    freqs, _, z = signal.stft(_mono(audio), fs=sr, nperseg=n_fft, noverlap=n_fft - _HOP,
                              boundary=None, padded=False)
    return (np.abs(z) ** 2).T, freqs


def spectral_centroid(audio: np.ndarray, sr: int) -> float:
    power, freqs = _power(audio, sr, 1024)
    mag = np.sqrt(power)
    total = mag.sum()
    return float((mag * freqs).sum() / total) if total > 0 else 0.0


def _flux(audio: np.ndarray, sr: int) -> np.ndarray:
    """Onset strength per hop: half-wave rectified difference of log magnitude."""
    power, _ = _power(audio, sr, 512)
    logmag = np.log1p(1000.0 * np.sqrt(power))
    return np.maximum(np.diff(logmag, axis=0), 0.0).sum(axis=1)


def onset_rate(audio: np.ndarray, sr: int) -> float:
    flux = _flux(audio, sr)
    if flux.size < 3 or flux.max() <= 0:
        return 0.0
    # Adaptive threshold: a peak must stand above the local median by a
    # fraction of the clip's typical peak height (scale-free across clips).
    # 0.3, not lower: Griffin-Lim phase noise adds small flux peaks. On 100
    # demo clips 0.15 gave fast/slow AUC 0.97 on originals but 0.81 after the
    # codec round trip; 0.3 gives 0.87-0.95 on both, with the round-trip rate
    # correlating 0.94-0.98 with the original (benchmarks/demo_data.py).
    local = ndimage.median_filter(flux, size=17, mode="nearest")
    height = local + 0.3 * np.percentile(flux, 99)
    peaks, _ = signal.find_peaks(flux, height=height, distance=max(1, int(0.06 * sr / _HOP)))
    return float(len(peaks) / (len(_mono(audio)) / sr))


def sustain(audio: np.ndarray, sr: int) -> float:
    """Fraction of 32 ms frames within 12 dB of the clip's loud level (its 95th percentile).

    Held notes (a pad) keep most frames near the top; plucked and struck notes
    decay between onsets, so fewer do. Scale-free (a level ratio), in 0..1.
    """
    x = _mono(audio)
    hop = max(1, int(0.032 * sr))
    frames = len(x) // hop
    if frames < 2:
        return 0.0
    rms = np.sqrt(np.mean(x[: frames * hop].reshape(frames, hop) ** 2, axis=1)) + 1e-9
    level = 20 * np.log10(rms)
    return float(np.mean(level >= np.percentile(level, 95) - 12.0))


def tempo_bpm(audio: np.ndarray, sr: int) -> float:
    flux = _flux(audio, sr)
    flux = flux - flux.mean()
    if not np.any(flux):
        return 0.0
    ac = np.correlate(flux, flux, mode="full")[len(flux) - 1:]
    ac = ac / ac[0]
    bpms = np.arange(60.0, 200.5, 0.5)
    lags = (sr / _HOP) * 60.0 / bpms
    at = lambda lag: np.interp(lag, np.arange(len(ac)), ac)  # noqa: E731
    # A beat period also repeats at twice its lag; crediting that half-weights
    # against choosing the eighth-note period (measured on the demo corpus:
    # 84 % exact vs 78 % without, the rest mostly octave errors).
    strength = np.maximum(at(lags) + 0.5 * at(2 * lags), 0.0)
    prior = np.exp(-0.5 * (np.log2(bpms / 120.0) / 0.5) ** 2)
    return float(bpms[np.argmax(strength * prior)])


def _triad_templates() -> tuple[np.ndarray, np.ndarray]:
    major = np.zeros((12, 12))
    minor = np.zeros((12, 12))
    for root in range(12):
        major[root, [root, (root + 4) % 12, (root + 7) % 12]] = 1.0
        minor[root, [root, (root + 3) % 12, (root + 7) % 12]] = 1.0
    return _standardise(major), _standardise(minor)


def _standardise(rows: np.ndarray) -> np.ndarray:
    return (rows - rows.mean(axis=1, keepdims=True)) / (rows.std(axis=1, keepdims=True) + 1e-9)


_MAJOR_T, _MINOR_T = _triad_templates()


def chroma(audio: np.ndarray, sr: int) -> np.ndarray:
    """Chroma [frames, 12] from 110-2000 Hz (pitch class 0 = C)."""
    power, freqs = _power(audio, sr, _N_FFT)
    band = (freqs >= 110) & (freqs <= 2000)
    pc = np.round(12 * np.log2(freqs[band] / 440.0) + 9).astype(int) % 12
    weights = np.zeros((band.sum(), 12))
    weights[np.arange(band.sum()), pc] = 1.0
    return np.sqrt(power[:, band]) @ weights


def mode_score(audio: np.ndarray, sr: int) -> float:
    """Energy-weighted mean over frames of (best major - best minor triad correlation)."""
    return triad_mode(chroma(audio, sr))


def triad_mode(c: np.ndarray) -> float:
    """:func:`mode_score` of chroma frames [frames, 12] (any non-negative pitch-class weights)."""
    energy = c.sum(axis=1)
    keep = energy > 1e-3 * energy.max() if energy.max() > 0 else np.zeros(len(c), bool)
    if not keep.any():
        return 0.0
    c = c[keep]
    c = _standardise(c)
    diff = (c @ _MAJOR_T.T).max(axis=1) - (c @ _MINOR_T.T).max(axis=1)
    return float(np.average(diff, weights=energy[keep]) / 12.0)


def loudness_db(audio: np.ndarray, sr: int) -> float:
    x = _mono(audio)
    frame = max(1, int(0.05 * sr))
    n = len(x) // frame
    if n == 0:
        return -120.0
    ms = (x[: n * frame].reshape(n, frame) ** 2).mean(axis=1)
    gate = ms > ms.max() * 1e-4  # ignore silence 40 dB below the loudest frame
    return float(10 * np.log10(ms[gate].mean() + 1e-12)) if gate.any() else -120.0


def describe(audio: np.ndarray, sr: int) -> Descriptors:
    return Descriptors(
        centroid_hz=spectral_centroid(audio, sr),
        onset_rate=onset_rate(audio, sr),
        tempo_bpm=tempo_bpm(audio, sr),
        mode_score=mode_score(audio, sr),
        loudness_db=loudness_db(audio, sr),
    )
