"""The plain-data messages between the bridge and an engine (in- or out-of-process).

Everything here is a frozen dataclass of str/int/float/tuple/numpy: picklable
for a ``multiprocessing`` queue today and easy to serialise for a remote GPU
engine later. Vectors travel as file paths (the engine side loads them and
builds ``engine.Steering``), never as tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from steerbridge.bridge.presets.model import Preset
from steerbridge.engine.vocab import (DEFAULT_ALPHA_UNITS, DEFAULT_CFG_MODE, DEFAULT_CFG_SCALE, DEFAULT_SECONDS,
                                      DEFAULT_SITE, DEFAULT_STEPS, RenderSettings)

__all__ = [
    "VectorTerm", "RenderJob", "SweepJob", "ExtractJob", "Job",
    "ModelInfo", "Progress", "RenderResult", "JobDone", "JobFailed", "JobCancelled", "WorkerEvent",
    "Event", "render_job_for",
]


@dataclass(frozen=True)
class VectorTerm:
    path: str  # absolute path of the vector file
    alpha: float
    layers: tuple[int, ...] | None = None
    one_to_all: int | None = None
    orthogonalize_against: tuple[str, ...] = ()  # absolute paths of other vector files


@dataclass(frozen=True)
class RenderJob(RenderSettings):
    """One loop: the render settings plus steering; every field changes the audio (the loop cache keys on all)."""

    terms: tuple[VectorTerm, ...] = ()
    cfg_mode: str = DEFAULT_CFG_MODE
    start_step: int = 0
    alpha_units: str = DEFAULT_ALPHA_UNITS


@dataclass(frozen=True)
class SweepJob:
    """Several renders in one request, e.g. one knob's alpha stops (same seed: aligned loops).

    Build the jobs with :func:`render_job_for` so every term keeps its knob's
    layers and orthogonalisation. Results arrive one by one (``index``).
    """

    renders: tuple[RenderJob, ...]


@dataclass(frozen=True)
class ExtractJob:
    """A CAA vector extraction, saved to ``out_path`` by the engine side."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]
    concept: str
    out_path: str
    site: str = DEFAULT_SITE
    layers: tuple[int, ...] | None = None
    seed: int = 0
    seconds: float = DEFAULT_SECONDS
    steps: int = DEFAULT_STEPS
    cfg_scale: float = DEFAULT_CFG_SCALE
    per_step: bool = False
    normalize: bool = False


Job = Union[RenderJob, SweepJob, ExtractJob]


@dataclass(frozen=True)
class ModelInfo:
    source: str
    fingerprint: str
    sample_rate: int
    channels: int
    num_layers: int


@dataclass(frozen=True)
class Progress:
    job_id: int
    done: int  # diffusion steps done (over all renders of a sweep)
    total: int


@dataclass(frozen=True)
class RenderResult:
    job_id: int
    audio: np.ndarray  # float32 [channels, samples]
    sample_rate: int
    render_s: float
    index: int = 0  # position within a sweep


@dataclass(frozen=True)
class JobDone:
    """The job finished; every :class:`RenderResult` of it came before this."""

    job_id: int
    detail: str = ""  # for an extraction: the path of the saved vector


@dataclass(frozen=True)
class JobFailed:
    job_id: int
    error: str  # what went wrong and how to fix it (the engine's message)
    kind: str  # the exception class name, e.g. "VectorMismatchError"


@dataclass(frozen=True)
class JobCancelled:
    job_id: int


@dataclass(frozen=True)
class WorkerEvent:
    """Lifecycle of the engine: kind = started | died | restarted | stopped."""

    kind: str
    detail: str = ""
    info: ModelInfo | None = None


Event = Union[Progress, RenderResult, JobDone, JobFailed, JobCancelled, WorkerEvent]


def render_job_for(preset: Preset, alphas: dict[str, float], *, prompt: str | None = None,
                   seed: int | None = None, seconds: float | None = None,
                   negative_prompt: str | None = None, bpm: float | None = None) -> RenderJob:
    """The render job for ``preset`` with knobs at ``alphas`` (missing knobs: 0).

    Terms at alpha 0 are left out: they add nothing, and leaving them out
    makes "all knobs at 0" the same job (and cache entry) as no steering.
    Terms are sorted by path so the same state always gives the same job.
    The tempo (reaching only a model with a beat input) is the tempo knob's
    alpha when the preset has one (missing: its default), else ``bpm``, else
    the scene's; a tempo knob with a vector adds it at the alpha its BPM maps to.
    """
    m, s = preset.model, preset.scene
    terms = []
    for knob in preset.knobs:
        if knob.is_tempo:
            bpm = float(alphas.get(knob.name, knob.default_alpha))
            alpha = knob.vector_alpha(bpm)  # a tempo knob with a vector steers it too
        else:
            alpha = float(alphas.get(knob.name, 0.0))
        if alpha == 0.0:
            continue
        terms.append(VectorTerm(
            path=str(preset.vector_path(knob)), alpha=alpha, layers=knob.layers, one_to_all=knob.one_to_all,
            orthogonalize_against=tuple(str(preset.ortho_path(o)) for o in knob.orthogonalize_against)))
    return RenderJob(
        prompt=prompt if prompt is not None else s.prompt,
        seed=seed if seed is not None else s.seed,
        seconds=seconds if seconds is not None else s.seconds,
        steps=m.steps, cfg_scale=m.cfg_scale, sampler=m.sampler,
        negative_prompt=negative_prompt if negative_prompt is not None else s.negative_prompt,
        terms=tuple(sorted(terms, key=lambda t: t.path)),
        cfg_mode=m.cfg_mode, start_step=m.start_step, alpha_units=m.alpha_units,
        bpm=bpm if bpm is not None else s.bpm)
