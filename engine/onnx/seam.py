"""The seam between upstream's CFG code and the transformer: ``DiffusionTransformer._forward``.

The exporter watches one real call through it to learn the inputs; the ONNX
runtime shadows it with the onnxruntime session (see :mod:`steerbridge.engine.onnx.export`
for why exactly that seam).
"""

from __future__ import annotations

import contextlib
import typing as tp
from collections.abc import Iterator

import torch
from torch import nn

from steerbridge.engine.onnx.spec import COND_NAMES, IGNORED_INPUTS, OnnxExportError

__all__ = ["capture_forward_inputs", "shadow_forward"]


def capture_forward_inputs(model: tp.Any, *, prompt: str = "onnx export probe", seconds: float = 4.0,
                           cfg_scale: float = 6.0) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Run one real CFG model call and return what ``DiffusionTransformer._forward`` received.

    Watching a real call (rather than re-deriving upstream's argument plumbing)
    gives both the set of conditioning inputs this model uses and realistic
    example tensors, batched ``[cond, uncond]``.
    """
    adapter = model.adapter
    dit = adapter.dit
    cond = adapter.encode(prompt, seconds=seconds)
    seen: dict[str, tp.Any] = {}

    def recorder(x: torch.Tensor, t: torch.Tensor, **kw: tp.Any) -> torch.Tensor:
        seen.update(x=x, t=t, **kw)
        return x  # the output is not needed

    gen = torch.Generator().manual_seed(0)
    ref = next(adapter.parameters())
    x = torch.randn(1, adapter.model.io_channels, adapter.latent_length(seconds), generator=gen).to(ref)
    with shadow_forward(dit, recorder), torch.inference_mode():
        adapter.model.model(x, torch.full((1,), 0.5).to(ref), cfg_scale=cfg_scale, batch_cfg=True,
                            rescale_cfg=True, **cond)
    extra = sorted(k for k, v in seen.items() if v is not None and k not in ("x", "t", *COND_NAMES, *IGNORED_INPUTS))
    if extra:
        raise OnnxExportError(f"this model's transformer takes inputs the ONNX export does not carry: {extra}; "
                              "use the torch backend")
    conds = {k: seen[k].clone() for k in COND_NAMES if seen.get(k) is not None}
    return seen["x"].clone(), seen["t"].clone(), conds


@contextlib.contextmanager
def shadow_forward(dit: nn.Module, fn: tp.Callable[..., torch.Tensor]) -> Iterator[None]:
    """Shadow ``dit._forward`` with ``fn`` (an instance attribute) and always restore it."""
    previous = dit.__dict__.get("_forward")
    dit.__dict__["_forward"] = fn
    try:
        yield
    finally:
        if previous is None:
            del dit.__dict__["_forward"]
        else:
            dit.__dict__["_forward"] = previous


