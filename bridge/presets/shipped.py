"""The presets that ship with steerbridge, found by name wherever steerbridge is installed.

They are package data (``steerbridge.presets``: the repository's ``presets/``
folder), read through :mod:`importlib.resources`, so ``--preset demo`` works
from a checkout, an editable install and an installed wheel alike. A preset's
vector files sit beside it, so the preset is handed out as a real file path.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["shipped_dir", "shipped_names", "resolve_preset"]


def shipped_dir() -> Path:
    """The folder holding the shipped presets and their ``vectors/``."""
    root = resources.files("steerbridge.presets")
    # A normal or editable install keeps package data on disk; only a zipped
    # install would not, and presets need their vector files beside them.
    if not isinstance(root, Path):
        raise RuntimeError(f"steerbridge's presets are not on the file system ({root!r}); "
                           "install steerbridge as ordinary files (pip install, not a zip)")
    return root


def shipped_names() -> tuple[str, ...]:
    """Names usable as ``--preset NAME``, e.g. ``("demo", "tiny")``."""
    return tuple(sorted(p.stem for p in shipped_dir().glob("*.toml") if not p.stem.endswith(".example")))


def resolve_preset(text: str | os.PathLike[str]) -> Path:
    """A preset argument -> its file: an existing path as given, else a shipped preset by name.

    ``demo`` and ``demo.toml`` both name the shipped demo preset; a path that
    exists always wins, so a local ``demo.toml`` in the current folder is used
    when there is one. Raises :class:`FileNotFoundError` naming the shipped
    presets when neither exists.
    """
    path = Path(text).expanduser()
    if path.exists():
        return path
    name = path.name[:-5] if path.name.endswith(".toml") else path.name
    if path.parent == Path(".") and name in shipped_names():
        return shipped_dir() / f"{name}.toml"
    raise FileNotFoundError(f"no preset file {str(text)!r}, and no shipped preset of that name "
                            f"(shipped: {', '.join(shipped_names())}); give a path to a .toml file or a shipped name")
