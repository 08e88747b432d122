"""Loops as the player holds them, and the gain maths the player uses.

A rendered loop arrives as float32 ``[channels, samples]`` at the model's
rate. :func:`prepare_loop` turns it, outside the audio callback, into a
:class:`Loop`: resampled to the device rate with soxr and interleaved into ONE
read-only buffer (``L R L R ...``). One buffer per voice, never one ring per
channel: two rings drift apart after an underrun, one interleaved buffer
cannot.

The gain maths lives here as plain functions so tests can check the player's
output against the closed forms:

- :func:`equal_power`: ``(cos(w*pi/2), sin(w*pi/2))``, the crossfade between
  the two pre-rendered stops around a knob position (gains squared sum to 1,
  so uncorrelated loops keep their loudness across the fade);
- :func:`grid_gains`: the same for several knobs at once, as the tensor
  product of each knob's pair (the 2**K corner gains still square-sum to 1);
- :func:`one_pole_coefficient` and :func:`one_pole_ramp`: the per-sample
  smoothing ``g[n] = g[n-1] + k * (target - g[n-1])`` with
  ``k = 1 - exp(-1 / (tau * rate))``, whose closed form is
  ``g[n] = target + (g[-1] - target) * (1 - k) ** (n + 1)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import soxr

__all__ = [
    "Loop", "prepare_loop", "equal_power", "grid_gains",
    "one_pole_coefficient", "one_pole_ramp",
]


@dataclass(frozen=True, eq=False)  # identity equality: two renders are two voices
class Loop:
    """One voice: interleaved float32 frames at the device rate.

    ``key`` says which render this is (the session uses the stop indices or the
    exact alphas); ``source`` keeps the render at its own rate for WAV export
    and waveform display.
    """

    data: np.ndarray  # [frames * channels] float32, C-contiguous, read-only
    rate: int
    channels: int
    key: Hashable = None
    source: np.ndarray | None = field(default=None, repr=False)  # [channels, samples]
    source_rate: int | None = None

    @property
    def frames(self) -> int:
        return self.data.shape[0] // self.channels

    @property
    def seconds(self) -> float:
        return self.frames / self.rate

    def planar(self) -> np.ndarray:
        """``[channels, frames]`` view of the device-rate audio (no copy)."""
        return self.data.reshape(self.frames, self.channels).T


def prepare_loop(
    audio: np.ndarray,
    *,
    source_rate: int,
    rate: int,
    channels: int = 2,
    key: Hashable = None,
    quality: str = "HQ",
) -> Loop:
    """Resample ``audio`` (``[channels, samples]``) to ``rate`` and interleave it.

    Mono is duplicated to every output channel; more channels than the device
    has is an error rather than a silent downmix.
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(
            f"loop audio has shape {np.shape(audio)}; expected [channels, samples] with samples > 0"
        )
    if x.shape[0] == 1 and channels > 1:
        x = np.repeat(x, channels, axis=0)
    if x.shape[0] != channels:
        raise ValueError(
            f"loop has {x.shape[0]} channels but the output has {channels}; "
            "render with the output's channel count or open the output with more channels"
        )
    if source_rate <= 0 or rate <= 0:
        raise ValueError(f"sample rates must be positive, got source_rate={source_rate}, rate={rate}")
    frames_major = np.ascontiguousarray(x.T)  # [samples, channels]: soxr's layout
    if source_rate != rate:
        frames_major = soxr.resample(frames_major, source_rate, rate, quality=quality)
    data = np.ascontiguousarray(frames_major, dtype=np.float32).reshape(-1)
    data.flags.writeable = False  # the callback reads it from another thread
    return Loop(data=data, rate=rate, channels=channels, key=key, source=x, source_rate=source_rate)


def equal_power(weight: float) -> tuple[float, float]:
    """Gains of the lower and upper stop for ``weight`` in 0..1 (clamped)."""
    w = min(1.0, max(0.0, float(weight)))
    if w == 0.0:  # exact ends: cos/sin of 0 and pi/2 are not exactly 1/0 in floats
        return 1.0, 0.0
    if w == 1.0:
        return 0.0, 1.0
    angle = w * math.pi / 2.0
    return math.cos(angle), math.sin(angle)


def grid_gains(brackets: Sequence[tuple[int, int, float]]) -> dict[tuple[int, ...], float]:
    """Corner gains for several knobs, each given as ``(low, high, weight)``.

    Returns ``{(stop index per knob): gain}`` for the corners with a non-zero
    gain. With no knobs the single "no steering" voice ``()`` gets gain 1.
    """
    per_knob: list[list[tuple[int, float]]] = []
    for low, high, weight in brackets:
        g_low, g_high = equal_power(weight)
        pairs = [(low, g_low), (high, g_high)] if low != high else [(low, 1.0)]
        per_knob.append([(i, g) for i, g in pairs if g > 0.0])
    gains: dict[tuple[int, ...], float] = {}
    for corner in itertools.product(*per_knob):
        gain = math.prod(g for _, g in corner)
        if gain > 0.0:
            key = tuple(i for i, _ in corner)
            gains[key] = gains.get(key, 0.0) + gain
    return gains


def one_pole_coefficient(*, tau_s: float, rate: int) -> float:
    """``k`` of the one-pole smoother with time constant ``tau_s`` at ``rate``."""
    if tau_s <= 0:
        return 1.0  # no smoothing: jump to the target at the first sample
    return 1.0 - math.exp(-1.0 / (tau_s * rate))


def one_pole_ramp(start: float, target: float, *, k: float, frames: int) -> np.ndarray:
    """The per-sample gains the player applies over ``frames`` (float64, closed form)."""
    n = np.arange(1, frames + 1, dtype=np.float64)
    return target + (start - target) * (1.0 - k) ** n
