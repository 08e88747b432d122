"""What the demo model's long CPU jobs (training, distillation) share: the log, atomic saves, one optimiser step."""

from __future__ import annotations

import math
import os
import signal
import time
import typing as tp
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["Cadence", "RunLog", "atomic_save", "cosine_lr", "optimise", "rate_line"]


def atomic_save(obj: tp.Any, path: Path) -> None:
    """``torch.save`` to a temporary name, then rename: a kill mid-save never leaves half a checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class RunLog:
    """Print a timestamped line and append it to ``out/<name>`` (line-buffered, so ``tail -f`` follows)."""

    def __init__(self, out: Path, name: str = "train.log") -> None:
        self.file = open(out / name, "a", buffering=1)

    def __call__(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        self.file.write(line + "\n")


def cosine_lr(step: int, *, peak: float, warmup: int, total: int, floor: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to ``floor * peak`` at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def optimise(loss: torch.Tensor, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], *,
             model: torch.nn.Module, ema: torch.nn.Module, ema_decay: float) -> float:
    """Backward, clip the gradient norm to 1, step, move the EMA copy towards ``model``; the loss as a float."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1 - ema_decay)
    return loss.item()


def rate_line(step: int, total: int, losses: list[float], lr: float, started: float, *, window: int) -> str:
    """``step N/M loss L lr X R steps/min``: the mean loss of the last ``window`` steps, the rate since ``started``."""
    rate = len(losses) / max(1e-9, time.monotonic() - started) * 60
    return (f"step {step}/{total} loss {sum(losses[-window:]) / len(losses[-window:]):.4f} lr {lr:.2e} "
            f"{rate:.1f} steps/min (this run)")


class Cadence:
    """When a long run checkpoints, evaluates and stops.

    It stops when ``minutes`` have passed or on SIGTERM (so ``kill`` ends a
    background run cleanly); it checkpoints every ``checkpoint_minutes`` and
    evaluates every ``eval_minutes``; at the end it checkpoints, and evaluates
    unless the last step was just evaluated.
    """

    def __init__(self, *, minutes: float | None, checkpoint_minutes: float, eval_minutes: float) -> None:
        self.minutes, self.checkpoint_s, self.eval_s = minutes, checkpoint_minutes * 60, eval_minutes * 60
        self.stopped = False
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopped", True))
        self.start = self.last_checkpoint = self.last_eval = time.monotonic()
        self.evaluated_at = -1

    def running(self) -> bool:
        over = self.minutes is not None and time.monotonic() - self.start > self.minutes * 60
        return not (self.stopped or over)

    def tick(self, step: int, save: Callable[[], None], evaluate: Callable[[], None]) -> None:
        now = time.monotonic()
        if now - self.last_checkpoint > self.checkpoint_s:
            save()
            self.last_checkpoint = now
        if now - self.last_eval > self.eval_s:
            evaluate()
            self.last_eval, self.evaluated_at = time.monotonic(), step

    def finish(self, step: int, save: Callable[[], None], evaluate: Callable[[], None]) -> None:
        save()
        if self.evaluated_at != step:
            evaluate()
