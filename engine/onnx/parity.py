"""Parity of the ONNX denoiser with torch: teacher-forced per step, and free-running renders."""

from __future__ import annotations

import contextlib
import os
import typing as tp
from collections.abc import Iterator

import torch

from steerbridge.engine.onnx.runtime import OnnxDenoiser, OrtOptions
from steerbridge.engine.onnx.spec import PARITY_TOL, OnnxExportError, OnnxSpec
from steerbridge.engine.runtime.steering import SteeringHandle

__all__ = ["TeacherForced", "check_parity"]


class TeacherForced:
    """Runs torch and ORT on the same input each call, returns torch's, keeps the worst gap."""

    def __init__(self, onnx: OnnxDenoiser) -> None:
        self.onnx = onnx
        self.max_diff = 0.0
        self.calls = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kw: tp.Any) -> torch.Tensor:
        ref = self.onnx.adapter.model.model(x, t, **kw)
        got = self.onnx(x, t, **kw)
        self.max_diff = max(self.max_diff, float((ref - got).abs().max()))
        self.calls += 1
        return ref


@contextlib.contextmanager
def _random_steering(adapter: tp.Any, *, steps: int, scale: float) -> Iterator[SteeringHandle]:
    """A temporary handle with random per-step offsets at every site and layer, cond rows only."""
    gen = torch.Generator().manual_seed(7)
    with SteeringHandle(adapter) as handle:
        adapter.gate.cfg_mode, adapter.gate.start_step = "cond_only", 0
        for wrapper in handle.wrappers.values():
            wrapper.set_offset(torch.randn(steps, wrapper.offset.shape[1], generator=gen) * scale)
        yield handle


def check_parity(model: tp.Any, folder: str | os.PathLike[str], *, spec: OnnxSpec | None = None,
                 seconds: float = 2.0, steps: int = 4, cfg_scale: float = 6.0, steer_scale: float = 0.5,
                 tol: float = PARITY_TOL, options: OrtOptions = OrtOptions()) -> dict[str, float]:
    """Compare ORT with torch on short renders; raise OnnxExportError beyond ``tol``.

    Per step (teacher-forced: both see the same input) for an unsteered and a
    steered render (random per-step offsets at every site and layer, cond rows
    only), plus the final latents of free-running torch and ORT renders.
    ``seconds`` differs from the export's example length on purpose: it checks
    the dynamic time axis. The model's resident steering is detached first.
    """
    model.detach_steering()
    adapter = model.adapter
    cond = adapter.encode("onnx parity probe", seconds=seconds)
    common = dict(seed=3, seconds=seconds, steps=steps, cfg_scale=cfg_scale)
    out: dict[str, float] = {}
    for label, steered in (("unsteered", False), ("steered", True)):
        ctx = _random_steering(adapter, steps=steps, scale=steer_scale) if steered else contextlib.nullcontext()
        with ctx as handle:
            onnx = OnnxDenoiser(adapter, handle or SteeringHandle(adapter), folder, fingerprint=model.fingerprint,
                                spec=spec, options=options)
            forced = TeacherForced(onnx)
            adapter.sample(cond, denoiser=forced, **common)
            out[f"{label}_step_max_abs"] = forced.max_diff
            if steered:
                ref = adapter.sample(cond, **common)
                got = adapter.sample(cond, denoiser=onnx, **common)
                out["steered_latents_max_abs"] = float((ref - got).abs().max())
    worst = max(v for k, v in out.items() if k.endswith("step_max_abs"))
    if worst > tol:
        raise OnnxExportError(f"ONNX parity check failed: denoiser outputs differ by up to {worst:.3g} "
                              f"(tolerance {tol:g}): {out}")
    return out


