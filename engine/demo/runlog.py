"""What the demo model's long CPU jobs (training, distillation) share: a timestamped log and atomic saves."""

from __future__ import annotations

import os
import time
import typing as tp
from pathlib import Path

import torch

__all__ = ["RunLog", "atomic_save"]


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
