"""Model sources: which family a source belongs to, loaded strictly through that family.

A source is ``"tiny"`` (a small random-weight stable-audio-tools model built
from ``engine/configs/tiny.json``, for tests and first runs), ``"demo"`` (the
embedded demo model, ``engine/models/demo/``), ``"tiny:<family>"`` (a tiny
random-weight model of another family's real classes) or a folder, recognised
by its files (:func:`steerbridge.engine.adapters.base.recognise`) or read as
the family named by ``family``. Each family's loader is strict: a missing,
unexpected or mis-shaped weight is an error listing the keys.
"""

from __future__ import annotations

import os
from pathlib import Path

from steerbridge.engine.adapters import sat_source
from steerbridge.engine.adapters.base import family as family_spec, recognise
from steerbridge.engine.adapters.sat_source import DEMO_DIR, TINY_CONFIG, build_random
from steerbridge.engine.runtime.errors import ModelLoadError
from steerbridge.engine.runtime.loaded import LoadedModel, fingerprint_of
from steerbridge.engine.vocab import DEFAULT_FAMILY, TINY_PREFIX

__all__ = ["LoadedModel", "load_source", "build_random", "fingerprint_of", "TINY_CONFIG", "DEMO_DIR"]


def load_source(source: str | os.PathLike[str], *, family: str | None = None) -> LoadedModel:
    """Build and load a model from ``"tiny"``, ``"demo"``, ``"tiny:<family>"`` or a model folder."""
    src = str(source)
    if src in ("tiny", "demo") and family in (None, DEFAULT_FAMILY):
        return sat_source.load_tiny() if src == "tiny" else sat_source.load_demo()
    if src.startswith(TINY_PREFIX) or (src == "tiny" and family is not None):
        spec = family_spec(src[len(TINY_PREFIX):] if src.startswith(TINY_PREFIX) else str(family))
        if spec.tiny is None:
            raise ModelLoadError(f"family '{spec.name}' has no built-in tiny model; give a model folder")
        return _checked(spec.tiny(), spec.name)
    folder = Path(src).expanduser()
    if not folder.is_dir():
        raise ModelLoadError(f"model folder {folder} does not exist. Give 'demo', 'tiny', 'tiny:<family>' or a "
                             "folder holding model_config.json + model.safetensors (stable-audio-tools) or a "
                             "diffusers model_index.json folder.")
    spec = family_spec(family) if family is not None else recognise(folder)
    return _checked(spec.load(folder), spec.name)


def _checked(loaded: LoadedModel, name: str) -> LoadedModel:
    if loaded.family != name:  # a loader that forgot to say which family it built
        raise ModelLoadError(f"the loader of family '{name}' returned a model of family '{loaded.family}'")
    return loaded
