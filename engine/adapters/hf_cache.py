"""Where a diffusers folder's component comes from: its own sub-folder, else the local Hugging Face cache, never a
download.

A fine-tune or a partial copy of a model often ships only the parts that
changed (the transformer, the VAE) and relies on the stock text encoder and
tokenizer of the base model, which a machine that ran the base model holds in
its Hugging Face cache. The cache is only read: ``HF_HUB_CACHE``, else
``HF_HOME/hub``, else ``XDG_CACHE_HOME/huggingface/hub``, else
``~/.cache/huggingface/hub``, in the hub's layout
``models--<org>--<name>/snapshots/<revision>/`` (``refs/main`` names the
revision). Only the stock parts come from the cache: the ``transformers``
components (text encoders, tokenizers, feature extractors; AudioLDM2's GPT2 and
vocoder). A cached snapshot supplies component ``<name>`` when its own
``model_index.json`` lists ``<name>`` with the same library and class and
holds the ``<name>/`` sub-folder. Snapshots of the same pipeline class are
preferred; two different repositories that both fit are an error naming them
(steerbridge does not guess between two text encoders).
"""

from __future__ import annotations

import json
import os
import typing as tp
from pathlib import Path

from steerbridge.engine.runtime.errors import ModelLoadError

__all__ = ["hub_cache_dir", "component_folder", "needed_files"]

_CACHED_LIBRARIES = ("transformers",)  # the stock parts a base model's cache can lend


def hub_cache_dir() -> Path:
    """The local Hugging Face hub cache, from the environment as ``huggingface_hub`` reads it (read now)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(xdg).expanduser() / "huggingface" / "hub"


def needed_files(library: str, cls: tp.Any) -> str:
    """The files component folder of ``cls`` must hold, in words."""
    name = getattr(cls, "__name__", str(cls))
    if hasattr(cls, "config_class") and hasattr(cls, "state_dict"):  # a transformers model
        return "config.json and model.safetensors"
    if hasattr(cls, "state_dict"):  # a diffusers model
        return "config.json and diffusion_pytorch_model.safetensors"
    if "Tokenizer" in name:
        vocab = sorted(set(getattr(cls, "vocab_files_names", {}).values()) - {"tokenizer.json"})
        return "tokenizer_config.json and tokenizer.json" + (f" (or the slow vocabulary: {', '.join(vocab)})"
                                                              if vocab else "")
    if "Scheduler" in name:
        return "scheduler_config.json"
    return "preprocessor_config.json" if library == "transformers" else "its config file"


def component_folder(folder: Path, name: str, spec: list[str], *, pipeline: str, cls: tp.Any) -> Path:
    """The folder to load component ``name`` (``spec`` = [library, class]) from: ``folder/name``, else the cache.

    A :class:`ModelLoadError` says which files are needed and where they can go when neither has it.
    """
    own = folder / name
    if own.is_dir():
        return own
    library, cls_name = spec
    cache = hub_cache_dir()
    if library in _CACHED_LIBRARIES:
        found = _from_cache(cache, name, spec, pipeline)
        if found is not None:
            return found
    where = (f"in {own}/, or in the local Hugging Face cache ({cache}; HF_HUB_CACHE or HF_HOME move it) as "
             f"models--ORG--NAME/snapshots/REV/{name}/ of a snapshot whose model_index.json lists "
             f"\"{name}\": [\"{library}\", \"{cls_name}\"] (e.g. the base model, fetched on a machine with "
             "internet by `huggingface-cli download ORG/NAME`)") if library in _CACHED_LIBRARIES else f"in {own}/"
    raise ModelLoadError(f"{folder} has no '{name}/' folder for its {cls_name}, and steerbridge never downloads. "
                         f"Put the component's files ({needed_files(library, cls)}) {where}.")


def _snapshots(cache: Path) -> list[tuple[str, Path]]:
    """``(org/name, snapshot folder)`` of each model repository in the cache: ``refs/main``'s revision if it
    is there, else every revision (newest name last, so the choice does not depend on listing order)."""
    out = []
    for repo in sorted(cache.glob("models--*")):
        snaps = repo / "snapshots"
        if not snaps.is_dir():
            continue
        repo_id = repo.name[len("models--"):].replace("--", "/")
        main = repo / "refs" / "main"
        rev = main.read_text().strip() if main.is_file() else ""
        chosen = [snaps / rev] if rev and (snaps / rev).is_dir() else sorted(p for p in snaps.iterdir() if p.is_dir())
        out += [(repo_id, s) for s in chosen]
    return out


def _same_class(a: str, b: str) -> bool:
    """One class, or a tokenizer and its fast twin (T5Tokenizer / T5TokenizerFast load the same files)."""
    return a.removesuffix("Fast") == b.removesuffix("Fast") if "Tokenizer" in a else a == b


def _from_cache(cache: Path, name: str, spec: list[str], pipeline: str) -> Path | None:
    fits: dict[str, tuple[bool, Path]] = {}  # repo -> (same pipeline class, the component folder)
    for repo_id, snap in _snapshots(cache):
        try:
            index = json.loads((snap / "model_index.json").read_text())
        except (OSError, ValueError):
            continue
        entry = index.get(name) if isinstance(index, dict) else None
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == spec[0]
                and isinstance(entry[1], str) and _same_class(entry[1], spec[1]) and (snap / name).is_dir()):
            continue
        fits[repo_id] = (index.get("_class_name") == pipeline, snap / name)  # the newest revision of a repo wins
    best = [r for r, (same, _) in fits.items() if same] or list(fits)
    if len(best) > 1:
        raise ModelLoadError(f"the local Hugging Face cache ({cache}) holds a '{name}' ({spec[1]}) in several "
                             f"models: {', '.join(best)}. steerbridge does not guess which one your model was "
                             f"made with: copy the right one's {name}/ folder into the model folder.")
    return fits[best[0]][1] if best else None
