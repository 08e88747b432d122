"""Rendering: one resident model, one prompt in, float32 audio out, steered or not.

:class:`SteerableModel` is what the rest of steerbridge holds: a loaded model,
its family adapter and a steering handle. The first steered render attaches
the site wrappers and leaves them attached (the resident-server mode); later
renders only rewrite the offsets in place. ``detach_steering()`` restores the
original modules.
"""

from __future__ import annotations

import contextlib

import hashlib
import json
import os
import threading
import time
import typing as tp
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from steerbridge.engine.adapters.base import beat_kwargs, family as family_spec, require_onnx
from steerbridge.engine.runtime.errors import EngineError, RenderCancelled
from steerbridge.engine.runtime.source import LoadedModel, load_source
from steerbridge.engine.runtime.steering import Steering, SteeringHandle
from steerbridge.engine.vocab import BACKENDS, MAX_BPM, MAX_SECONDS, MAX_STEPS, MIN_BPM, RenderSettings

__all__ = ["RenderRequest", "Render", "SteerableModel", "load_model"]


@dataclass(frozen=True)
class RenderRequest(RenderSettings):
    """What to render (the shared :class:`RenderSettings` fields), checked when made."""

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= MAX_SECONDS:
            raise EngineError(f"seconds must be in (0, {MAX_SECONDS:g}], got {self.seconds}")
        if not 1 <= self.steps <= MAX_STEPS:
            raise EngineError(f"steps must be in 1..{MAX_STEPS}, got {self.steps}")
        if self.bpm is not None and not MIN_BPM <= self.bpm <= MAX_BPM:
            raise EngineError(f"bpm must be in {MIN_BPM:g}..{MAX_BPM:g}, got {self.bpm}")

    def cache_key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Render:
    audio: np.ndarray  # float32 [channels, samples]
    sample_rate: int
    render_s: float


class SteerableModel:
    """A resident model that renders loops with optional steering."""

    def __init__(self, loaded: LoadedModel, *, device: str = "cpu", backend: str = "torch",
                 onnx_dir: str | os.PathLike[str] | None = None) -> None:
        self.model = loaded.model.to(device)
        self.config = loaded.config
        self.source = loaded.source
        self.fingerprint = loaded.fingerprint
        self.family = loaded.family
        self.device = device
        self.adapter = family_spec(loaded.family).adapter(self.model, self.config)
        self.handle = SteeringHandle(self.adapter)
        self._lock = threading.Lock()  # one render at a time: steering buffers are shared
        self.backend = "torch"
        self._denoiser: tp.Any = None  # the DiTWrapper's stand-in for adapter.sample (None: torch)
        self.use_backend(backend, onnx_dir=onnx_dir)

    sample_rate = property(lambda self: self.adapter.sample_rate)
    channels = property(lambda self: self.adapter.channels)
    num_layers = property(lambda self: self.adapter.num_layers)
    sites = property(lambda self: self.adapter.sites)

    def site_dim(self, site: str, layer: int | None = None) -> int:
        """``site``'s width at ``layer`` (None: the one width of every layer; an error where they differ)."""
        return self.adapter.site_dim(site, layer)

    def use_backend(self, backend: str, *, onnx_dir: str | os.PathLike[str] | None = None) -> None:
        """Run the denoiser in ``"torch"`` or ``"onnx"`` (onnxruntime, from an export in ``onnx_dir``).

        ``onnx_dir`` defaults to this model's export folder (steerbridge.engine.onnx.spec.default_export_dir);
        an export made for another fingerprint is refused.
        """
        if backend not in BACKENDS:
            raise EngineError(f"backend '{backend}' is not one of {BACKENDS}")
        denoiser = None
        if backend == "onnx":
            require_onnx(self.family)
            from steerbridge.engine.onnx.runtime import OnnxDenoiser  # onnxruntime loads only when asked for
            from steerbridge.engine.onnx.spec import default_export_dir

            folder = onnx_dir if onnx_dir is not None else default_export_dir(self.source)
            denoiser = OnnxDenoiser(self.adapter, self.handle, folder, fingerprint=self.fingerprint)
        with self._lock:
            self.backend, self._denoiser = backend, denoiser

    def detach_steering(self) -> None:
        with self._lock:
            self.handle.detach()

    def render(self, request: RenderRequest, *, steering: Steering | None = None,
               progress: Callable[[int, int], None] | None = None,
               cancel: Callable[[], bool] | None = None) -> Render:
        """Render one loop; ``cancel()`` is polled after every diffusion step."""
        with self._lock:
            t0 = time.perf_counter()
            if steering is not None and steering.terms:
                self.handle.attach()
            if self.handle.attached:
                self.handle.set(steering)

            def on_step(done: int, total: int) -> None:
                if progress is not None:
                    progress(done, total)
                if cancel is not None and cancel():
                    raise RenderCancelled(f"render of '{request.prompt}' cancelled after step {done}/{total}")

            beat = beat_kwargs(self.adapter, request.bpm)  # only a model with a beat input hears the tempo
            cond = self.adapter.encode(request.prompt, seconds=request.seconds,
                                       negative_prompt=request.negative_prompt, **beat)
            latents = self.adapter.sample(cond, seed=request.seed, seconds=request.seconds, steps=request.steps,
                                          cfg_scale=request.cfg_scale, sampler=request.sampler, on_step=on_step,
                                          denoiser=self._denoiser)
            with _decoder(self.model, request.decoder):
                audio = self.adapter.decode(latents, seconds=request.seconds)
            out = np.ascontiguousarray(audio.cpu().numpy(), dtype=np.float32)
            if not np.isfinite(out).all():
                raise EngineError("the render produced NaN/inf audio; lower the steering alpha")
            return Render(out, self.sample_rate, time.perf_counter() - t0)


@contextlib.contextmanager
def _decoder(model: tp.Any, name: str | None) -> tp.Iterator[None]:
    """Decode with ``name`` for one render: the demo codec's ``decoder`` switch (griffin-lim | hifigan).

    Per request, not per model, so a live session can audition both and the
    render cache keeps them apart (the name is part of the request's key)."""
    if name is None:
        yield
        return
    codec = getattr(model, "pretransform", None)
    choices = tuple(getattr(codec, "decoders", ()))
    if not choices:
        raise EngineError(f"decoder {name!r}: this model has one fixed decoder (only the demo model's mel codec "
                          "offers a choice: griffin-lim or hifigan)")
    if name not in choices:
        raise EngineError(f"decoder {name!r} is not one of {choices}")
    before = codec.decoder
    codec.decoder = name
    try:
        yield
    finally:
        codec.decoder = before


def load_model(source: str | os.PathLike[str], *, device: str = "cpu", backend: str = "torch",
               onnx_dir: str | os.PathLike[str] | None = None, family: str | None = None) -> SteerableModel:
    """Load ``"tiny"``, ``"demo"``, ``"tiny:<family>"`` or a model folder (see runtime/source.py).

    ``family`` names the folder's family when its files do not; ``backend``: torch | onnx.
    """
    return SteerableModel(load_source(source, family=family), device=device, backend=backend, onnx_dir=onnx_dir)


