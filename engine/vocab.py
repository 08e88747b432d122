"""The words the engine and the bridge share, each defined once. torch-free.

The bridge builds jobs and presets from these, the engine validates and
renders them: CFG modes, alpha units, backends, the default sampling
settings, and :class:`RenderSettings` -- the fields that say which loop to
render (the engine's :class:`~steerbridge.engine.runtime.render.RenderRequest`
and the bridge's :class:`~steerbridge.bridge.engine_link.jobs.RenderJob` both
extend it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["CFG_MODES", "ALPHA_UNITS", "BACKENDS", "SITES", "DEFAULT_SECONDS", "MAX_SECONDS", "DEFAULT_STEPS",
           "MAX_STEPS", "MIN_BPM", "MAX_BPM",
           "DEFAULT_CFG_SCALE", "DEFAULT_CFG_MODE", "DEFAULT_ALPHA_UNITS", "DEFAULT_SITE",
           "RenderSettings", "DEFAULT_FAMILY", "TINY_PREFIX", "is_builtin_source", "POSITIONS"]

# Which half of a classifier-free-guidance batch steering is added to.
CFG_MODES = ("cond_only", "both", "uncond_only")
# Sequence positions an extraction records: all (diffusion), generated frames or the prompt's EOS (autoregressive).
POSITIONS = ("all", "frames", "eos")
# "absolute": alpha multiplies the vector as stored; "norm": alpha is in units of
# the site's mean activation norm (recorded in the vector file at extraction).
ALPHA_UNITS = ("absolute", "norm")
# Where the denoiser runs: torch, or onnxruntime from `steerbridge export-onnx`.
BACKENDS = ("torch", "onnx")
# Activation sites: a block's cross-attention output (before the residual add), the block's output.
SITES = ("cross_attn", "block")

DEFAULT_SECONDS = 4.0
MAX_SECONDS = 600.0  # a loop is 0 < seconds <= MAX_SECONDS long
MAX_STEPS = 1000  # 1 <= steps <= MAX_STEPS diffusion steps
DEFAULT_STEPS = 8
MIN_BPM, MAX_BPM = 20.0, 400.0  # a beat-conditioned model's tempo input
DEFAULT_CFG_SCALE = 6.0
DEFAULT_CFG_MODE = "cond_only"
DEFAULT_ALPHA_UNITS = "absolute"
DEFAULT_SITE = "cross_attn"

# Model sources: "tiny", "demo", "tiny:<family>" (a tiny random-weight model of
# that family's real classes) or a folder, recognised by its files.
DEFAULT_FAMILY = "stable-audio-tools"
TINY_PREFIX = "tiny:"


def is_builtin_source(source: str) -> bool:
    """``tiny``, ``demo`` or ``tiny:<family>``: built in, not a folder."""
    return source in ("tiny", "demo") or source.startswith(TINY_PREFIX)


@dataclass(frozen=True)
class RenderSettings:
    """Which loop to render: prompt, seed, length and sampling settings (no steering)."""

    prompt: str
    seed: int = 0
    seconds: float = DEFAULT_SECONDS
    steps: int = DEFAULT_STEPS
    cfg_scale: float = DEFAULT_CFG_SCALE
    sampler: str | None = None  # None: the model family's default
    negative_prompt: str | None = None
    decoder: str | None = None  # None: the model's own; the demo codec offers "griffin-lim" and "hifigan"
    bpm: float | None = None  # a beat-conditioned model plays at this tempo, a beat on the loop's start; others
    #                           ignore it

    def render_settings(self) -> dict[str, Any]:
        """These fields alone, e.g. to build a ``RenderRequest`` from a job."""
        return {f.name: getattr(self, f.name) for f in fields(RenderSettings)}
