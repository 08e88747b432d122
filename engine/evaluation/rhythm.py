"""Tempo as a beat tracker hears it: librosa's onset strength and tempo estimate.

The numpy descriptor :func:`~steerbridge.engine.evaluation.descriptors.tempo_bpm`
is a hand-made autocorrelation of spectral flux; this one is librosa's
(0.11: ``onset.onset_strength`` + ``feature.tempo``, the standard in MIR), an
independent second opinion that the acceptance benchmark and ``bench`` report
beside it. librosa is in the ``eval`` extra; without it :class:`LibrosaMissing`
says how to install it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LibrosaMissing", "librosa_tempo"]


class LibrosaMissing(RuntimeError):
    pass


def librosa_tempo(audio: np.ndarray, sr: int) -> float:
    """Global tempo estimate in BPM (librosa's default prior, centred on 120 BPM)."""
    try:
        import librosa
    except ImportError as exc:
        raise LibrosaMissing("the librosa tempo descriptor needs librosa: pip install -e '.[eval]'") from exc
    x = np.asarray(audio, dtype=np.float32)
    x = x.mean(axis=0) if x.ndim == 2 else x
    onset = librosa.onset.onset_strength(y=x, sr=sr)
    if not np.any(onset):
        return 0.0
    return float(librosa.feature.tempo(onset_envelope=onset, sr=sr)[0])
