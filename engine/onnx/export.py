"""Export a model's diffusion transformer to ONNX, with steering offsets as graph inputs.

What is exported. stable-audio-tools' ``DiffusionTransformer.forward`` does the
classifier-free-guidance bookkeeping (batch ``[cond, uncond]``, combine, rescale)
in a few tensor ops and calls ``_forward`` once for the real work. Only
``_forward`` goes into the graph: the CFG code stays upstream's own Python (run
in torch by :mod:`steerbridge.engine.onnx.runtime`), so it cannot drift from the torch path,
and one graph with a dynamic batch serves CFG-on (2 rows) and CFG-off (1 row)
steps alike.

Graph inputs: ``x [rows, C, T]``, ``t [rows]``, the conditioning tensors this
model's ``_forward`` receives (found by watching one real call: e.g.
``cross_attn_cond``, ``global_embed``) and one ``offset.<site>.<layer> [rows, d]``
per site and layer. The offset is added to that site's output at every token,
exactly like :class:`steerbridge.engine.runtime.steering.SiteWrapper` adds ``gate[row] * offset[step]``;
the caller computes the gated rows, so a knob move, a new vector, another layer,
start step or CFG mode is only a different input -- never a re-export. Every
site and layer gets an input (zeros when unsteered), as the torch path attaches
a wrapper at every layer.

Beside ``denoiser.onnx`` the export writes ``export.json`` (:class:`OnnxSpec`):
the model fingerprint, the input layout and the parity measured right after
export. :func:`read_spec` refuses an export made for another model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import types
import typing as tp
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from steerbridge.engine.adapters.base import require_onnx
from steerbridge.engine.adapters.sat import sat
from steerbridge.engine.onnx.parity import check_parity
from steerbridge.engine.onnx.seam import capture_forward_inputs
from steerbridge.engine.onnx.spec import GRAPH_FILE, SPEC_FILE, OnnxExportError, OnnxSpec
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.steering import SiteWrapper

__all__ = ["ExportResult", "export_denoiser"]


class _OffsetSite(nn.Module):
    """Export-time site wrapper: adds the offset input ``[rows, d]`` at every token."""

    def __init__(self, inner: nn.Module, offsets: list[torch.Tensor], index: int) -> None:
        super().__init__()
        self.inner = inner
        self._offsets = offsets  # shared holder, refilled by _ExportGraph.forward
        self.index = index

    def forward(self, *args: tp.Any, **kwargs: tp.Any) -> torch.Tensor:
        y = self.inner(*args, **kwargs)
        return y + self._offsets[self.index].to(y.dtype).unsqueeze(1)


class _ExportGraph(nn.Module):
    """``_forward`` with positional inputs ``(x, t, *conds, *offsets)`` for the tracer."""

    def __init__(self, dit: nn.Module, conds: tuple[str, ...], holder: list[torch.Tensor]) -> None:
        super().__init__()
        self.dit = dit
        self.conds = conds
        self.holder = holder

    def forward(self, x: torch.Tensor, t: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        n = len(self.conds)
        self.holder[:] = rest[n:]
        # No activation checkpointing in inference graphs.
        return self.dit._forward(x, t, use_checkpointing=False, **dict(zip(self.conds, rest[:n])))


@contextlib.contextmanager
def _offset_sites(adapter: tp.Any, holder: list[torch.Tensor]) -> Iterator[tuple[tuple[str, int], ...]]:
    """Swap :class:`_OffsetSite` in at every site and layer; yield their (site, layer) order.

    A resident torch :class:`SiteWrapper` is looked through (its buffers must not
    be baked into the graph as constants) and put back afterwards.
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    order: list[tuple[str, int]] = []
    try:
        for site in adapter.sites:
            for layer in range(adapter.num_layers):
                try:
                    parent, name = adapter.site_slot(site, layer)
                except EngineError:
                    continue  # e.g. layers past final_cross_attn_ix have no cross-attention
                current = getattr(parent, name)
                base = current.inner if isinstance(current, SiteWrapper) else current
                setattr(parent, name, _OffsetSite(base, holder, len(order)))
                swapped.append((parent, name, current))
                order.append((site, layer))
        yield tuple(order)
    finally:
        for parent, name, current in reversed(swapped):
            setattr(parent, name, current)


class _StaticLayerNorm(nn.Module):
    """Upstream ``LayerNorm`` with a constant normalised shape.

    Upstream calls ``F.layer_norm(x, x.shape[-1:], ...)``; the TorchScript
    exporter traces ``x.shape[-1:]`` as a runtime value and then refuses it
    (LayerNormalization needs a constant axis). Same maths, constant shape.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.shape = (int(inner.gamma.numel()),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ln = self.inner
        if ln.force_fp32:
            out = F.layer_norm(x.float(), self.shape, weight=ln.gamma.float(), bias=ln.beta.float(), eps=ln.eps)
            return out.to(x.dtype)
        return F.layer_norm(x, self.shape, weight=ln.gamma, bias=ln.beta, eps=ln.eps)


@contextlib.contextmanager
def _static_layer_norms(root: nn.Module) -> Iterator[None]:
    """Swap :class:`_StaticLayerNorm` in for every upstream LayerNorm under ``root``, then back."""
    layer_norm = sat("transformer").LayerNorm
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for parent in list(root.modules()):
            for name, child in list(parent.named_children()):
                if type(child) is layer_norm:
                    setattr(parent, name, _StaticLayerNorm(child))
                    swapped.append((parent, name, child))
        yield
    finally:
        for parent, name, child in reversed(swapped):
            setattr(parent, name, child)


@contextlib.contextmanager
def _eager(root: nn.Module) -> Iterator[None]:
    """Run upstream's ``torch.compile``-decorated methods as their plain originals.

    Under ``ENABLE_TORCH_COMPILE=1`` stable-audio-tools wraps e.g.
    ``TransformerBlock.forward`` in ``torch.compile`` at import time, and the
    tracer refuses compiled functions (no stance helps: the wrapper raises
    first). The originals, shadowed per instance here, are the same maths.
    """
    shadowed: list[tuple[nn.Module, str]] = []
    try:
        for module in root.modules():
            for klass in type(module).__mro__:
                for name, attr in vars(klass).items():
                    original = getattr(attr, "_torchdynamo_orig_callable", None)
                    if original is not None and name not in module.__dict__:
                        module.__dict__[name] = types.MethodType(original, module)
                        shadowed.append((module, name))
        yield
    finally:
        for module, name in shadowed:
            del module.__dict__[name]


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    spec: OnnxSpec
    export_s: float
    size_bytes: int


def export_denoiser(model: tp.Any, out: str | os.PathLike[str], *, opset: int = 17, seconds: float = 4.0,
                    check: bool = True) -> ExportResult:
    """Export ``model``'s transformer to ``out/denoiser.onnx`` + ``out/export.json``.

    With ``check`` the export is verified before it is kept: steered and
    unsteered denoiser outputs of ORT and torch over a short render must agree
    within ``PARITY_TOL`` (see :func:`steerbridge.engine.onnx.parity.check_parity`).
    Files are written under temporary names and moved into place last, so a
    failed export never leaves a usable-looking folder behind.
    """
    import time

    import onnx

    require_onnx(model.family)  # the export graph is the stable-audio-tools DiT's
    t0 = time.perf_counter()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    adapter = model.adapter
    dtype = next(adapter.parameters()).dtype
    if dtype != torch.float32:
        raise OnnxExportError(f"ONNX export needs a float32 model, this one is {dtype}")
    x, t, conds = capture_forward_inputs(model, seconds=seconds)
    holder: list[torch.Tensor] = []
    graph = _ExportGraph(adapter.dit, tuple(conds), holder).eval()
    tmp_graph, tmp_spec = folder / (GRAPH_FILE + ".tmp"), folder / (SPEC_FILE + ".tmp")
    with _offset_sites(adapter, holder) as order, _static_layer_norms(adapter.dit), _eager(adapter.dit), \
            torch.no_grad():
        dim = adapter.site_dim(order[0][0]) if order else int(adapter.dit.transformer.dim)
        gen = torch.Generator().manual_seed(1)
        offsets = [torch.randn(x.shape[0], dim, generator=gen) * 0.1 for _ in order]
        spec = OnnxSpec(fingerprint=model.fingerprint, source=model.source, conds=tuple(conds), sites=order,
                        dim=dim, opset=opset, versions=_versions())
        names = spec.input_names()
        rows = {0: "rows"}
        axes = {"x": {0: "rows", 2: "frames"}, "t": rows, "denoised": {0: "rows", 2: "frames"}}
        axes.update({k: ({0: "rows", 2: "frames"} if k == "input_concat_cond" else {0: "rows", 1: "tokens_" + k})
                     if conds[k].dim() == 3 else rows for k in conds})
        axes.update({n: rows for n in names[2 + len(conds):]})
        torch.onnx.export(graph, (x, t, *conds.values(), *offsets), str(tmp_graph), input_names=names,
                          output_names=["denoised"], dynamic_axes=axes, opset_version=opset, dynamo=False,
                          do_constant_folding=True)
    onnx.checker.check_model(str(tmp_graph))
    # The spec is the export's commit record: drop the old one before the graph
    # changes, write the new one last.
    (folder / SPEC_FILE).unlink(missing_ok=True)
    os.replace(tmp_graph, folder / GRAPH_FILE)
    if check:
        try:
            parity = check_parity(model, folder, spec=spec, seconds=seconds / 2)  # another length: dynamic axes
        except BaseException:
            (folder / GRAPH_FILE).unlink(missing_ok=True)
            raise
        spec = dataclasses.replace(spec, parity=parity)
    tmp_spec.write_text(spec.to_json() + "\n")
    os.replace(tmp_spec, folder / SPEC_FILE)
    return ExportResult(folder, spec, time.perf_counter() - t0, (folder / GRAPH_FILE).stat().st_size)


def _versions() -> dict[str, str]:
    import onnx

    out = {"torch": torch.__version__, "onnx": onnx.__version__}
    with contextlib.suppress(ImportError):
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    return out
