"""Tempo follow: time-stretch a loop to a new tempo without changing its pitch.

When the band's tempo changes, the loop playing now must fit the new bar
length at once; an exact render at the new length takes seconds. Rubber Band
(through Spotify's ``pedalboard``, part of the ``steerbridge[link]`` extra)
stretches a 5 s stereo loop in about 0.1-0.4 s here.

A loop wraps around, so it is stretched with a little of its own end before
its start and of its start after its end (``margin_s``), and the middle is
kept: the stretcher's start-up and tail never land on the seam.
"""

from __future__ import annotations

import numpy as np

__all__ = ["StretchUnavailable", "stretch_loop", "import_pedalboard"]

INSTALL_HINT = "pip install 'steerbridge[link]'"


class StretchUnavailable(RuntimeError):
    """The time stretcher (pedalboard) is not installed."""


def import_pedalboard():  # noqa: ANN201 - the module
    try:
        import pedalboard
    except ImportError:
        raise StretchUnavailable("tempo follow needs pedalboard (Rubber Band time stretch), which is not "
                                 f"installed; install the Link extra: {INSTALL_HINT}") from None
    return pedalboard


def stretch_loop(audio: np.ndarray, rate: int, factor: float, *, margin_s: float = 0.25,
                 high_quality: bool = True) -> np.ndarray:
    """``audio`` (``[channels, samples]``) played ``factor`` times as fast, same pitch, as a loop.

    ``factor`` is new tempo / old tempo: 2.0 halves the length. Returns
    float32 ``[channels, round(samples / factor)]``.
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"loop audio has shape {x.shape}; expected [channels, samples]")
    if not (0.25 <= factor <= 4.0):
        raise ValueError(f"stretch factor {factor:g} is outside 0.25..4 (a tempo change of more than 4x)")
    n = x.shape[1]
    out_len = max(1, round(n / factor))
    if factor == 1.0:
        return x.copy()
    pb = import_pedalboard()
    m = min(n, max(1, round(margin_s * rate)))
    wrapped = np.concatenate([x[:, n - m:], x, x[:, :m]], axis=1)
    y = pb.time_stretch(np.ascontiguousarray(wrapped), float(rate), stretch_factor=float(factor),
                        high_quality=high_quality)
    start = round(m / factor)
    piece = y[:, start:start + out_len]
    if piece.shape[1] < out_len:  # the stretcher came back a few samples short: pad with silence
        piece = np.pad(piece, ((0, 0), (0, out_len - piece.shape[1])))
    return np.ascontiguousarray(piece, dtype=np.float32)
