"""Pictures people would rather look at than read: spectrogram grids of sweeps.

Log-magnitude STFT on a mel-like log-frequency axis, computed with numpy and
drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["log_spectrogram", "sweep_grid"]


def log_spectrogram(audio: np.ndarray, sample_rate: int, *, n_fft: int = 1024,
                    hop: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dB magnitudes ``[freqs, frames]``, frequency axis (Hz) and time axis (s) of a mono mix."""
    mono = np.asarray(audio, dtype=np.float32)
    mono = mono.mean(axis=0) if mono.ndim == 2 else mono
    if mono.size < n_fft:
        mono = np.pad(mono, (0, n_fft - mono.size))
    frames = 1 + (mono.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(mono[idx] * np.hanning(n_fft), axis=1)).T
    db = 20 * np.log10(spec[1:] + 1e-6)  # drop the DC bin: it has no place on a log axis
    return db, np.fft.rfftfreq(n_fft, 1 / sample_rate)[1:], np.arange(frames) * hop / sample_rate


def sweep_grid(renders: list[tuple[str, np.ndarray]], sample_rate: int, path: str | Path, *,
               title: str = "") -> Path:
    """One spectrogram per (label, audio), side by side, shared colour scale; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(renders)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 0.8, 3.4), sharey=True, squeeze=False)
    specs = [log_spectrogram(a, sample_rate) for _, a in renders]
    top = max(float(s[0].max()) for s in specs)
    for ax, (label, _), (db, freqs, times) in zip(axes[0], renders, specs):
        mesh = ax.pcolormesh(times, freqs, db, shading="auto", vmin=top - 80, vmax=top,
                             cmap="magma")
        ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("s")
    axes[0][0].set_ylabel("Hz")
    fig.colorbar(mesh, ax=axes[0].tolist(), label="dB", shrink=0.85)
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
