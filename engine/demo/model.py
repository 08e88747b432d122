"""Build, export and load the demo model through stable-audio-tools' own factory.

Importing this module registers the demo's custom components
(``steerbridge_mel`` pretransform, ``steerbridge_minilm``,
``steerbridge_minilm_pooled`` and ``steerbridge_beat`` conditioners) with :mod:`steerbridge.engine.runtime.components`;
anything that builds a model from ``engine/demo/config.json`` or an exported
demo folder must import it first (the engine's model source does).

The exported folder is an ordinary stable-audio-tools model folder:
``model_config.json`` + ``model.safetensors``. Weights are stored in fp16
(the 11.7 M-parameter model is 23 MB instead of 47 MB, inside the 50 MB
budget for a committed model) except the codec's band statistics, which stay
fp32 because every decoded sample depends on them.
"""

from __future__ import annotations

import functools
import json
import os
import typing as tp
from pathlib import Path

import torch

from steerbridge.engine.adapters.sat import sat
from steerbridge.engine.demo import beat as _beat  # noqa: F401  (registers steerbridge_beat)
from steerbridge.engine.demo import codec as _codec  # noqa: F401  (registers steerbridge_mel)
from steerbridge.engine.demo import text as _text  # noqa: F401  (registers the MiniLM conditioners)
from steerbridge.engine.runtime.components import custom_components

__all__ = ["CONFIG_PATH", "build_model", "export_model", "latent_frames", "load_model_folder",
           "no_activation_checkpointing"]

CONFIG_PATH = Path(__file__).with_name("config.json")


def build_model(config: dict[str, tp.Any] | None = None) -> tp.Any:
    """A ``ConditionedDiffusionModelWrapper`` with fresh weights (seed torch first for repeatability)."""
    config = config or json.loads(CONFIG_PATH.read_text())
    with custom_components():
        return sat("factory").create_model_from_config(config)


def load_model_folder(folder: str | os.PathLike[str]) -> tp.Any:
    """Build from ``folder/model_config.json`` and load ``model.safetensors`` strictly."""
    from safetensors.torch import load_file

    folder = Path(folder)
    model = build_model(json.loads((folder / "model_config.json").read_text()))
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    return model.eval().requires_grad_(False)


def export_model(model: torch.nn.Module, folder: str | os.PathLike[str],
                 config: dict[str, tp.Any] | None = None) -> int:
    """Write the model folder atomically; return the weights' size in bytes.

    ``config`` defaults to ``engine/demo/config.json`` (a distilled model
    changes only its ``steerbridge`` sampling defaults). Verified by
    :func:`load_model_folder` (a strict load through the factory).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() and not k.startswith("pretransform.") else v)
             .contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors.tmp"), metadata={"format": "pt"})
    os.replace(folder / "model.safetensors.tmp", folder / "model.safetensors")
    config = config or json.loads(CONFIG_PATH.read_text())
    (folder / "model_config.json.tmp").write_text(json.dumps(config, indent=4) + "\n")
    os.replace(folder / "model_config.json.tmp", folder / "model_config.json")
    load_model_folder(folder)
    return (folder / "model.safetensors").stat().st_size


def latent_frames(config: dict[str, tp.Any], seconds: float) -> int:
    """Latent frames of ``seconds`` of audio for a demo model ``config``, a whole number of DiT patches."""
    hop = config["model"]["pretransform"]["config"]["hop"]
    patch = config["model"]["diffusion"]["config"]["patch_size"]
    frames = int(round(seconds * config["sample_rate"] / hop))
    return frames - frames % patch


def no_activation_checkpointing(model: tp.Any) -> None:
    """Upstream's transformer recomputes every block in backward (``use_checkpointing=True``
    by default, made for GPU memory); this 11 M model fits in RAM many times over, and
    skipping the recompute is ~25 % faster per step on this CPU."""
    transformer = model.model.model.transformer
    transformer.forward = functools.partial(transformer.forward, use_checkpointing=False)
