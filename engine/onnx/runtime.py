"""ONNX Runtime backend: the sampler's denoiser runs in onnxruntime on the CPU, steering included.

How it plugs in. :class:`OnnxDenoiser` is a callable with the DiTWrapper's
signature, handed to ``StableAudioAdapter.sample(denoiser=...)``; the samplers,
the step callback, the noise and the steering state machine (``StepGate``) are
the torch path's own. For each call it runs upstream's DiTWrapper and
DiffusionTransformer ``forward`` (CFG batching and combining, in torch) with
``_forward`` -- the transformer itself -- shadowed by the ORT session (see
:mod:`steerbridge.engine.onnx.export` for why exactly that seam).

Steering. The session gets one ``[rows, d]`` offset per site and layer, computed
from the resident torch :class:`~steerbridge.engine.runtime.steering.SteeringHandle`'s wrappers the
same way they would add it: ``gate[row] * offset[step]``. So ``handle.set()``,
CFG modes, start steps and per-step vectors behave identically, and a knob move
is only a different input.

Threads. ``intra_op_num_threads`` defaults to torch's thread count in this
process (torch's own default is the machine's cores, 2 here), so switching
backends never changes the CPU budget a render takes, and spin-waiting is off: the engine shares the CPU with the audio process, and
ORT's default busy-wait between ops would burn the core the audio callback needs.
"""

from __future__ import annotations

import os
import typing as tp
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from steerbridge.engine.onnx.seam import shadow_forward
from steerbridge.engine.onnx.spec import COND_NAMES, GRAPH_FILE, OnnxExportError, OnnxSpec, read_spec
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.steering import SiteWrapper, SteeringHandle

__all__ = ["OrtOptions", "OnnxDenoiser"]


@dataclass(frozen=True)
class OrtOptions:
    threads: int = 0  # 0: torch's thread count in this process (its default: this machine's cores, 2 here)
    spin: bool = False
    optimization: str = "all"  # "all" | "extended" | "basic" | "none"


def _session(path: Path, options: OrtOptions) -> tp.Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise EngineError("the onnx backend needs the 'onnxruntime' package (pip install onnxruntime)") from exc
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
    if options.optimization not in levels:
        raise EngineError(f"ORT optimization '{options.optimization}' is not one of {tuple(levels)}")
    so.graph_optimization_level = levels[options.optimization]
    spin = "1" if options.spin else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _module_ids(root: nn.Module) -> frozenset[int]:
    """Identity of the transformer's module tree, steering wrappers aside."""
    return frozenset(id(m) for m in root.modules() if not isinstance(m, SiteWrapper))


class OnnxDenoiser:
    """Stands in for the DiTWrapper in ``adapter.sample``: same call, transformer in ORT."""

    def __init__(self, adapter: tp.Any, handle: SteeringHandle, folder: str | os.PathLike[str], *,
                 fingerprint: str, spec: OnnxSpec | None = None, options: OrtOptions = OrtOptions()) -> None:
        self.folder = Path(folder)
        self.spec = spec if spec is not None else read_spec(self.folder, fingerprint=fingerprint)
        if self.spec.fingerprint != fingerprint:
            raise OnnxExportError(f"ONNX spec for model {self.spec.fingerprint} given for model {fingerprint}")
        self.adapter = adapter
        self.handle = handle
        self.options = options
        self.session = _session(self.folder / GRAPH_FILE, options)
        self._tree = _module_ids(adapter.dit)
        self._zeros: dict[int, np.ndarray] = {}

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kw: tp.Any) -> torch.Tensor:
        if _module_ids(self.adapter.dit) != self._tree:
            # Activation patching or a recorder swapped a module in: ORT cannot see it.
            raise EngineError("the model's transformer was modified in torch (activation patching or "
                              "recording?); the onnx backend cannot apply that -- use backend 'torch'")
        with shadow_forward(self.adapter.dit, self.forward):
            return self.adapter.model.model(x, t, **kw)

    # --- the transformer ------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, **kw: tp.Any) -> torch.Tensor:
        """``DiffusionTransformer._forward`` on the ORT session."""
        if kw.get("return_info") or kw.get("exit_layer_ix") is not None:
            raise EngineError("the onnx backend returns no hidden states (return_info/exit_layer_ix); use torch")
        given = {k for k in COND_NAMES if kw.get(k) is not None}
        if given != set(self.spec.conds):
            raise EngineError(f"this call conditions on {sorted(given)}, the ONNX export on "
                              f"{sorted(self.spec.conds)}; re-export with `steerbridge export-onnx`")
        feed = {"x": _np(x), "t": _np(t), **{k: _np(kw[k]) for k in self.spec.conds}}
        feed.update(self.offsets(rows=x.shape[0]))
        (out,) = self.session.run(None, feed)
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)

    def offsets(self, *, rows: int) -> dict[str, np.ndarray]:
        """``gate[row] * offset[step]`` per site and layer, as the torch SiteWrapper adds it."""
        wrappers = self.handle.wrappers if self.handle.attached else {}
        zeros = self._zeros.get(rows)
        if zeros is None:
            zeros = self._zeros[rows] = np.zeros((rows, self.spec.dim), np.float32)
        feed = {}
        for site, layer in self.spec.sites:
            w = wrappers.get((site, layer))
            if w is None or not torch.any(w.offset):
                feed[OnnxSpec.offset_name(site, layer)] = zeros
                continue
            off = w.offset[min(int(w.step), w.offset.shape[0] - 1)]
            feed[OnnxSpec.offset_name(site, layer)] = _np(w.gate[:rows, None] * off[None, :])
        return feed


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


