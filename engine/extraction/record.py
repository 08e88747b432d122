"""Recording site activations during real sampling (for extraction and probes).

Like steering, recording swaps a wrapper module in at each site instead of
using forward hooks (hooks vanish under torch.compile). The wrapper keeps, for
every model call, the *conditional* rows only (which rows those are, the
family's CFG layout, comes from the step gate), averaged over time frames, keyed
by the diffusion step, plus the mean per-frame activation norm.
"""

from __future__ import annotations

import contextlib
import typing as tp
from collections import defaultdict
from collections.abc import Iterator

import torch
from torch import nn

from steerbridge.engine.runtime.steering import SiteModule

__all__ = ["SiteRecorder", "record_sites", "swapped_sites"]


class SiteRecorder(SiteModule):
    def __init__(self, inner: nn.Module, *, gate: tp.Any) -> None:
        super().__init__()
        self.inner = inner
        self._gate = gate
        self.by_step: dict[int, list[torch.Tensor]] = defaultdict(list)
        self.norms: list[float] = []

    def forward(self, *args: tp.Any, **kwargs: tp.Any) -> torch.Tensor:
        y = self.inner(*args, **kwargs)
        cond = y[self._gate.cond_rows(y.shape[0])].detach().float()
        self.by_step[self._gate.steps_done].append(cond.mean(dim=1).cpu())  # [rows, d]
        self.norms.append(float(cond.norm(dim=-1).mean()))
        return y

    def per_step_mean(self) -> torch.Tensor:
        """``[steps, d]``: mean over calls (and rows) within each diffusion step."""
        return torch.stack([torch.cat(self.by_step[s]).mean(0) for s in sorted(self.by_step)])

    def reset(self) -> None:
        self.by_step.clear()
        self.norms.clear()


M = tp.TypeVar("M", bound=nn.Module)


@contextlib.contextmanager
def swapped_sites(adapter: tp.Any, *, site: str, layers: tp.Sequence[int],
                  make: tp.Callable[[nn.Module], M]) -> Iterator[dict[int, M]]:
    """Swap ``make(original)`` in at ``site`` for each layer; always restore the originals (LIFO).

    The one mechanism behind recording and patching (and like steering's wrappers,
    a swapped module, not a forward hook, so it survives torch.compile).
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    modules: dict[int, M] = {}
    try:
        for layer in layers:
            parent, name = adapter.site_slot(site, layer)
            inner = getattr(parent, name)
            module = make(inner)
            setattr(parent, name, module)
            swapped.append((parent, name, inner))
            modules[layer] = module
        yield modules
    finally:
        for parent, name, inner in reversed(swapped):
            setattr(parent, name, inner)


def record_sites(adapter: tp.Any, *, site: str,
                 layers: tp.Sequence[int]) -> contextlib.AbstractContextManager[dict[int, SiteRecorder]]:
    """Swap recorders in at ``site`` for ``layers``; always restore the originals."""
    return swapped_sites(adapter, site=site, layers=layers, make=lambda inner: SiteRecorder(inner, gate=adapter.gate))
