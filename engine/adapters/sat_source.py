"""stable-audio-tools models from their files: the tiny and demo models and model folders, loaded strictly.

A folder of this family holds ``model_config.json`` + ``model.safetensors``
(Stable Audio Open 1.0 / Small). Unlike upstream's ``copy_state_dict``, which
skips missing or mis-shaped keys without a word, loading here is strict: any
missing, unexpected or mis-shaped key is an error that lists them. Only
safetensors are read (never pickle).
"""

from __future__ import annotations

import json
import os
import typing as tp
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from steerbridge.engine.adapters.sat import sat
from steerbridge.engine.runtime.components import custom_components
from steerbridge.engine.runtime.errors import ModelLoadError
from steerbridge.engine.runtime.loaded import LoadedModel, check_state, fingerprint_of

__all__ = ["TINY_CONFIG", "DEMO_DIR", "build_random", "load_tiny", "load_demo", "load_folder", "recognises"]

_ENGINE = Path(__file__).resolve().parents[1]  # engine/: configs/ and models/ are its package data
TINY_CONFIG = _ENGINE / "configs" / "tiny.json"
DEMO_DIR = _ENGINE / "models" / "demo"

# Text encoders upstream would fetch from the Hugging Face hub, and what a
# user must provide instead.
_HUB_CONDITIONERS = {
    "t5": "the T5 encoder '{t5_model_name}' (config.json, model.safetensors, spiece.model, "
    "tokenizer files) in the Hugging Face cache: copy a cache that holds it to this machine "
    "and point HF_HOME at it",
    "clap_text": "a LAION-CLAP checkpoint and the 'laion_clap' package",
    "clap_audio": "a LAION-CLAP checkpoint and the 'laion_clap' package",
    "lut": "the tokenizer '{tokenizer_name}' in the Hugging Face cache (set HF_HOME)",
    "phoneme": "the 'g2p_en' package and its data",
}


def _hub_name(c: dict[str, tp.Any]) -> str:
    cfg = c.get("config", {})
    return cfg.get("t5_model_name", "t5-base") if c["type"] == "t5" else cfg.get("tokenizer_name", "?")


def _check_conditioners(config: dict[str, tp.Any]) -> None:
    """Refuse, with a fix-it message, text encoders that would need a hub download."""
    for c in config.get("model", {}).get("conditioning", {}).get("configs", []):
        need = _HUB_CONDITIONERS.get(c.get("type", ""))
        if need is None or (c["type"] in ("t5", "lut") and _in_hf_cache(_hub_name(c))):
            continue
        name = _hub_name(c)
        raise ModelLoadError(
            f"conditioner '{c.get('id')}' of type '{c['type']}' needs "
            f"{need.format(t5_model_name=name, tokenizer_name=name)}. "
            "steerbridge never downloads weights at run time."
        )


def _in_hf_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # noqa: BLE001 - any failure means "not available offline"
        return False


def _build(config: dict[str, tp.Any]) -> nn.Module:
    _check_conditioners(config)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub
    try:
        with custom_components():
            model = sat("factory").create_model_from_config(config)
    except ModelLoadError:
        raise
    except (KeyError, AssertionError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"model_config.json is not a valid stable-audio-tools config: {exc!r}") from exc
    if type(model).__name__ != "ConditionedDiffusionModelWrapper" or type(model.model).__name__ != "DiTWrapper":
        raise ModelLoadError(
            f"steerbridge steers conditional DiT models (model_type 'diffusion_cond' with a 'dit' "
            f"diffusion model); this config builds {type(model).__name__}/{type(model.model).__name__}."
        )
    return model.eval().requires_grad_(False)


def _strict_load(model: nn.Module, weights: Path) -> dict[str, torch.Tensor]:
    try:
        state: dict[str, torch.Tensor] = {}
        with safe_open(str(weights), framework="pt") as f:
            for key in f.keys():
                state[key] = f.get_tensor(key)
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise ModelLoadError(f"cannot read {weights}: {exc}. It must be a safetensors file.") from exc
    # Stable Audio releases prefix nothing; training checkpoints may wrap in "diffusion.".
    if state and all(k.startswith("diffusion.") for k in state):
        state = {k[len("diffusion."):]: v for k, v in state.items()}
    expected = model.state_dict()
    check_state(expected, state, what=f"{weights} does not match model_config.json:",
                fix="Use the model_config.json that was released with these weights.")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    return state


def _randomize_zero_inits(model: nn.Module, seed: int) -> None:
    """Give zero-initialised branches (DiT output projections) small random weights.

    stable-audio-tools zero-initialises every residual branch's output, so a
    freshly built model's cross-attention outputs are exactly zero and no
    prompt reaches the audio. A random *test* model should respond to its prompt.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.model.parameters():
            if p.numel() > 1 and not torch.any(p):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)


def build_random(config: dict[str, tp.Any], *, seed: int = 0, name: str = "random") -> LoadedModel:
    """A model from ``config`` with seeded random weights (tests, benchmarks, the tiny model)."""
    torch.manual_seed(seed)
    model = _build(config)
    _randomize_zero_inits(model, seed=seed)
    return LoadedModel(model, config, name, fingerprint_of(config, model.state_dict()))


def recognises(folder: Path) -> bool:
    return (folder / "model_config.json").is_file()


def load_tiny() -> LoadedModel:
    return build_random(json.loads(TINY_CONFIG.read_text()), seed=0, name="tiny")


def load_demo() -> LoadedModel:
    if not (DEMO_DIR / "model.safetensors").exists():
        raise ModelLoadError(
            "the embedded demo model is not in this installation yet (engine/models/demo/). "
            "Use --model tiny for a random-weight model, or a Stable Audio Open folder."
        )
    loaded = load_folder(DEMO_DIR)
    loaded.source = "demo"
    return loaded


def load_folder(folder: Path) -> LoadedModel:
    """A folder holding ``model_config.json`` + ``model.safetensors``, loaded strictly."""
    cfg_path, weights = folder / "model_config.json", folder / "model.safetensors"
    for p in (cfg_path, weights):
        if not p.is_file():
            hint = " (only .safetensors weights are read; convert .ckpt files first)" if p == weights else ""
            raise ModelLoadError(f"{folder} has no {p.name}{hint}. A model folder holds "
                                 "model_config.json + model.safetensors (stable-audio-tools format).")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{cfg_path} is not valid JSON: {exc}") from exc
    model = _build(config)
    state = _strict_load(model, weights)
    return LoadedModel(model, config, str(folder.resolve()), fingerprint_of(config, state))
