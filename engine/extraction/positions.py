"""Which sequence positions a recording keeps: every position, generated frames only, or the prompt's EOS.

A diffusion model's site sees the whole loop at every step and the recorder
averages it (``all``). An autoregressive model (MusicGen) sees one new frame per
step, and MusicGen-Melody's first call also holds the prepended conditioning
(chroma, then the text). For those families the adapter says, per call, which
positions belong to a mode (``adapter.positions(mode, step=, length=)``):

* ``frames``: the newest position of each call, i.e. the state that generates
  each frame (DiffMean "averaged over generated frames");
* ``eos``: MusicGen-Melody's state at the prompt's end-of-sequence token, at
  every decoder layer (the MusicGen steering study's choice).

An adapter may name its family's default (``default_position``).
"""

from __future__ import annotations

import contextlib
import typing as tp

import torch

from steerbridge.engine.extraction.record import SiteRecorder, record_sites, swapped_sites
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.vocab import POSITIONS

__all__ = ["POSITIONS", "PositionRecorder", "recording", "resolve_position"]


class PositionRecorder(SiteRecorder):
    """A :class:`SiteRecorder` that keeps only the positions the adapter names for ``mode``."""

    def __init__(self, inner: torch.nn.Module, *, adapter: tp.Any, mode: str) -> None:
        super().__init__(inner, gate=adapter.gate)
        self._adapter = adapter
        self._mode = mode

    def forward(self, *args: tp.Any, **kwargs: tp.Any) -> torch.Tensor:
        y = self.inner(*args, **kwargs)
        step = self._gate.steps_done
        keep = self._adapter.positions(self._mode, step=step, length=y.shape[1])
        if keep is not None:
            cond = y[self._gate.cond_rows(y.shape[0]), keep].detach().float()
            self.by_step[step].append(cond.mean(dim=1).cpu())
            self.norms.append(float(cond.norm(dim=-1).mean()))
        return y


def resolve_position(adapter: tp.Any, position: str | None) -> str:
    """``position``, or the family's default; refused where the family has no such positions."""
    if position is None:
        return str(getattr(adapter, "default_position", "all"))
    if position not in POSITIONS:
        raise EngineError(f"position '{position}' is not one of {POSITIONS}")
    if position != "all" and not hasattr(adapter, "positions"):
        raise EngineError(f"position '{position}' is for autoregressive families (musicgen, musicgen-melody); "
                          f"this {adapter.family} model records every position ('all')")
    return position


def recording(adapter: tp.Any, *, site: str, layers: tp.Sequence[int],
              position: str = "all") -> contextlib.AbstractContextManager[dict[int, SiteRecorder]]:
    """Swap recorders in at ``site`` for ``layers`` that keep ``position``; always restore the originals."""
    if position == "all":
        return record_sites(adapter, site=site, layers=layers)
    position = resolve_position(adapter, position)
    return swapped_sites(adapter, site=site, layers=layers,
                         make=lambda inner: PositionRecorder(inner, adapter=adapter, mode=position))
