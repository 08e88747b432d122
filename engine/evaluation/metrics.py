"""Steering evaluation: preservation distance, alignment-preservation curves, AUC, smoothness.

Follows TADA Sec. 5.1 (and its released ``auc.py``), with model-free stand-ins:

* **Preservation distance** ``D(x, x0)`` to the alpha = 0 render: a
  multi-resolution log-mel distance (mean absolute difference of log mel
  spectrograms at FFT sizes 512/1024/2048, averaged). It stands in for LPAPS,
  which is a *learned* perceptual distance needing a pretrained audio network
  (not available offline, and it would make the score depend on a second
  model). Multi-resolution log-mel distance is the standard spectral loss of
  neural audio codecs: it compares what the ear compares (log energy on a mel
  frequency scale) at several time/frequency trade-offs, is deterministic,
  and like LPAPS is 0 for identical audio and grows with audible change.
* **Alignment** is a descriptor of the concept (steerbridge.engine.evaluation.concepts), as a
  sign-corrected delta to the alpha = 0 render, in units of the concept's scale:
  ``delta = sign * (S(x_alpha) - S(x0)) / scale`` (sign = +1 for alpha > 0).
* **AUC**: trapezoid integral of delta over distance, following the sweep in
  order of increasing |alpha| from the point (0, 0), up to a *shared cutoff*;
  the segment crossing the cutoff is interpolated to end exactly on it. The
  cutoff is calibrated as the paper does: the distance a prompt-level change
  produces (the render with the directional prompt, e.g. "bright keys track",
  against the neutral one, same seed), so every method is judged inside the
  same window of "as much change as editing the prompt".
* **Smoothness** (lower is better): on the points inside the cutoff, the delta
  normalised by its largest positive value, consecutive gaps over increasing
  |alpha|, and their standard deviation.

A CLAP alignment scorer is optional and needs a local checkpoint (see :func:`clap_scorer`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

from steerbridge.engine.runtime.errors import EngineError

__all__ = ["mel_filterbank", "log_mel", "preservation_distance", "Curve", "direction_curve", "curve_auc",
           "smoothness", "clap_scorer", "RESOLUTIONS"]

RESOLUTIONS = (512, 1024, 2048)


@lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int = 64, fmin: float = 30.0) -> np.ndarray:
    """Triangular HTK-mel filters ``[n_mels, n_fft // 2 + 1]`` (slaney-style area normalisation)."""
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(fmin), mel(sr / 2), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return tri * (2.0 / (hi - lo))


def log_mel(audio: np.ndarray, sr: int, n_fft: int, *, n_mels: int = 64) -> np.ndarray:
    """``log(mel power + 1e-5)`` as ``[n_mels, frames]`` of the mono mix."""
    x = np.asarray(audio, dtype=np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    _, _, z = signal.stft(x, fs=sr, nperseg=n_fft, noverlap=n_fft - n_fft // 4, boundary=None, padded=False)
    return np.log(mel_filterbank(sr, n_fft, n_mels) @ (np.abs(z) ** 2) + 1e-5)


def preservation_distance(audio: np.ndarray, reference: np.ndarray, sr: int, *,
                          resolutions: Sequence[int] = RESOLUTIONS) -> float:
    """Multi-resolution log-mel L1 distance (0 = identical); clips are cut to the shorter length."""
    a, b = np.asarray(audio), np.asarray(reference)
    n = min(a.shape[-1], b.shape[-1])
    a, b = a[..., :n], b[..., :n]
    return float(np.mean([np.abs(log_mel(a, sr, r) - log_mel(b, sr, r)).mean() for r in resolutions]))


@dataclass(frozen=True)
class Curve:
    """One steering direction's alignment-preservation curve, starting at alpha = 0."""

    alphas: tuple[float, ...]  # |alpha| increasing, first 0
    distance: tuple[float, ...]  # preservation distance to the alpha = 0 render
    delta: tuple[float, ...]  # sign-corrected alignment gain, concept-scale units


def direction_curve(alphas: Sequence[float], scores: Sequence[float], distances: Sequence[float], *,
                    baseline: float, scale: float, direction: int) -> Curve:
    """Build the curve of one direction (``direction`` +1 or -1) from renders at ``alphas`` (same sign)."""
    if direction not in (1, -1):
        raise EngineError(f"direction must be +1 or -1, got {direction}")
    if any(a * direction <= 0 for a in alphas):
        raise EngineError(f"alphas {list(alphas)} do not all have the sign of direction {direction}")
    if scale <= 0:
        raise EngineError(f"concept scale must be > 0, got {scale}")
    order = np.argsort(np.abs(alphas), kind="stable")
    return Curve(alphas=(0.0, *(float(abs(alphas[i])) for i in order)),
                 distance=(0.0, *(float(distances[i]) for i in order)),
                 delta=(0.0, *(float(direction * (scores[i] - baseline) / scale) for i in order)))


def _inside(curve: Curve, cutoff: float, *, boundary: bool) -> tuple[np.ndarray, np.ndarray]:
    """Points with distance <= cutoff, in sweep order; optionally one interpolated point on the cutoff."""
    d, y = np.asarray(curve.distance), np.asarray(curve.delta)
    keep = d <= cutoff + 1e-12
    xs, ys = list(d[keep]), list(y[keep])
    above = np.flatnonzero(~keep)
    if boundary and above.size and keep.any():
        j = int(above[0])  # first sweep point past the cutoff, bracketed by the last one inside
        i = int(np.flatnonzero(keep[:j])[-1]) if keep[:j].any() else None
        if i is not None and d[j] - d[i] > 1e-12:
            xs.append(cutoff)
            ys.append(float(y[i] + (cutoff - d[i]) / (d[j] - d[i]) * (y[j] - y[i])))
    return np.asarray(xs), np.asarray(ys)


def curve_auc(curve: Curve, cutoff: float) -> float:
    """Trapezoid area under delta over distance, in sweep order, up to ``cutoff``."""
    if not cutoff > 0:
        raise EngineError(f"AUC cutoff must be > 0, got {cutoff}; calibrate it on prompt-swap renders")
    x, y = _inside(curve, cutoff, boundary=True)
    return float(np.trapezoid(y, x)) if len(x) >= 2 else 0.0


def smoothness(curve: Curve, cutoff: float | None = None) -> float:
    """Std of consecutive gaps of the normalised delta (lower = more even); nan if it never moves forward."""
    x, y = _inside(curve, math.inf if cutoff is None else cutoff, boundary=False)
    peak = float(np.max(np.clip(y, 0.0, None))) if len(y) else 0.0
    if len(y) < 3 or peak <= 1e-12:
        return math.nan
    return float(np.std(np.diff(y / peak)))


def clap_scorer(checkpoint: str | os.PathLike[str] | None, *, text: str) -> Callable[[np.ndarray, int], float]:
    """Audio-text similarity with a local LAION-CLAP checkpoint (optional alignment metric).

    steerbridge never downloads weights: ``checkpoint`` must be a local file.
    """
    if checkpoint is None:
        raise EngineError("the CLAP scorer needs a local LAION-CLAP checkpoint: pass its path "
                          "(e.g. --clap-checkpoint /models/630k-audioset-best.pt); model-free descriptors "
                          "are used otherwise")
    if not os.path.isfile(checkpoint):
        raise EngineError(f"CLAP checkpoint {checkpoint} does not exist; give the path of a downloaded "
                          "LAION-CLAP .pt file")
    try:
        import laion_clap  # noqa: F401  (not a steerbridge dependency)
    except ImportError:
        raise EngineError("the CLAP scorer needs the 'laion_clap' package, which steerbridge does not install "
                          "(pip install laion-clap); model-free descriptors are used otherwise") from None
    model = laion_clap.CLAP_Module(enable_fusion=False)
    model.load_ckpt(str(checkpoint))
    text_emb = model.get_text_embedding([text], use_tensor=False)[0]

    def score(audio: np.ndarray, sr: int) -> float:
        mono = np.asarray(audio, dtype=np.float32)
        mono = mono.mean(axis=0) if mono.ndim == 2 else mono
        if sr != 48000:  # CLAP expects 48 kHz
            mono = signal.resample_poly(mono, 48000, sr).astype(np.float32)
        emb = model.get_audio_embedding_from_data(x=mono[None], use_tensor=False)[0]
        return float(emb @ text_emb / (np.linalg.norm(emb) * np.linalg.norm(text_emb) + 1e-12))

    return score
