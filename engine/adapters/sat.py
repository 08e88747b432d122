"""The one gateway to stable-audio-tools: nothing else in steerbridge imports it.

Why this module exists. stable-audio-tools 0.0.19 pins heavy training-only
packages (gradio, wandb, pandas, pytorch_lightning, laion-clap, ...) and its
inference modules import ``torchaudio`` eagerly; its sampler imports
``k_diffusion``, whose package ``__init__`` in turn imports torchvision, clip,
cleanfid and scikit-image for image evaluation code we never call. On a CPU
machine with only ``torch`` those imports fail although sampling needs none of
them.

So steerbridge installs stable-audio-tools, k-diffusion, alias-free-torch and
dctorch *without their dependencies* (see the Makefile) plus the handful of
packages the inference path really uses (einops, safetensors, torchsde,
torchdiffeq, jsonmerge, transformers, ...). When one of the eagerly-imported
but unused packages is missing, :func:`import_sat` puts a placeholder module in
``sys.modules`` *only while stable-audio-tools is imported* and removes it
again afterwards, so no other code (transformers' availability checks, the
user's own imports) ever sees it. Anything that really calls into a
placeholder raises :class:`MissingOptionalDependency` naming the package to
install. Where the real package is installed (a GPU user with torchaudio and
torchvision) it is used as is and no placeholder is made.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import sys
import threading
import types
from typing import Any

__all__ = ["MissingOptionalDependency", "import_sat", "sat", "placeholders_used"]

# Packages imported at module level by stable-audio-tools / k-diffusion whose
# code the inference path never runs. ``torchaudio`` is only used to resample
# init audio, which steerbridge does not offer.
_OPTIONAL = ("torchaudio", "torchvision", "clip", "cleanfid", "skimage", "kornia", "wandb")

_lock = threading.Lock()
_loaded: dict[str, types.ModuleType] | None = None
_placeholders_used: set[str] = set()


class MissingOptionalDependency(ImportError):
    """A feature reached a package that steerbridge did not install."""


class _Placeholder(types.ModuleType):
    """A module whose every attribute is another placeholder; calling one raises."""

    def __init__(self, name: str, root: str) -> None:
        super().__init__(name)
        self.__path__: list[str] = []  # a package, so ``from x.y import z`` works
        self.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=True)
        self._root = root

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _PlaceholderAttr(f"{self.__name__}.{attr}", self._root)


class _PlaceholderAttr:
    def __init__(self, qualname: str, root: str) -> None:
        self._qualname = qualname
        self._root = root

    def __getattr__(self, attr: str) -> "_PlaceholderAttr":
        return _PlaceholderAttr(f"{self._qualname}.{attr}", self._root)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise MissingOptionalDependency(
            f"{self._qualname} needs the package '{self._root}', which steerbridge does not "
            f"install because stable-audio-tools' inference path does not use it. "
            f"Install it (pip install {self._root}) if you need this feature."
        )

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        # Upstream code may subclass a placeholder class at import time.
        return (object,)


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots: set[str]) -> None:
        self.roots = roots

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.split(".")[0] in self.roots:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        root = spec.name.split(".")[0]
        _placeholders_used.add(root)
        return _Placeholder(spec.name, root)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def _missing(name: str) -> bool:
    if name in sys.modules:
        return False
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def _import_modules() -> dict[str, types.ModuleType]:
    return {
        "factory": importlib.import_module("stable_audio_tools.models.factory"),
        "diffusion": importlib.import_module("stable_audio_tools.models.diffusion"),
        "conditioners": importlib.import_module("stable_audio_tools.models.conditioners"),
        "dit": importlib.import_module("stable_audio_tools.models.dit"),
        "transformer": importlib.import_module("stable_audio_tools.models.transformer"),
        "sampling": importlib.import_module("stable_audio_tools.inference.sampling"),
        "pretransforms": importlib.import_module("stable_audio_tools.models.pretransforms"),
        "autoencoders": importlib.import_module("stable_audio_tools.models.autoencoders"),
    }


def import_sat() -> dict[str, types.ModuleType]:
    """Import the stable-audio-tools modules steerbridge uses; return them by short name."""
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        roots = {name for name in _OPTIONAL if _missing(name)}
        finder = _PlaceholderFinder(roots)
        before = set(sys.modules)
        sys.meta_path.insert(0, finder)
        try:
            # Upstream prints ("flash_attn not installed...") on import; keep stdout
            # clean for `--json` callers.
            with contextlib.redirect_stdout(io.StringIO()):
                mods = _import_modules()
        except ModuleNotFoundError as exc:
            raise MissingOptionalDependency(
                f"stable-audio-tools could not be imported: {exc}. Run `make install` "
                "(it installs stable-audio-tools without its training-only dependencies)."
            ) from exc
        finally:
            sys.meta_path.remove(finder)
            # Placeholders leave sys.modules again: upstream modules keep their own
            # references, nobody else can import them by accident.
            for name in set(sys.modules) - before:
                if name.split(".")[0] in roots:
                    del sys.modules[name]
        _quiet_upstream_progress()
        _loaded = mods
        return mods


def _quiet_upstream_progress() -> None:
    """Upstream samplers draw their own tqdm bars (``disable=False`` hard-coded).

    steerbridge reports progress itself (per diffusion step, to the CLI bar, the
    worker's events and OSC), so the upstream bars are silenced here.
    """
    import tqdm.auto

    def trange(*args: Any, **kwargs: Any) -> Any:
        kwargs["disable"] = True
        return tqdm.auto.trange(*args, **kwargs)

    def tqdm_quiet(*args: Any, **kwargs: Any) -> Any:
        kwargs["disable"] = True
        return tqdm.auto.tqdm(*args, **kwargs)

    for name in ("k_diffusion.sampling", "stable_audio_tools.inference.sampling"):
        module = sys.modules.get(name)
        if module is not None:
            if hasattr(module, "trange"):
                module.trange = trange
            if hasattr(module, "tqdm"):
                module.tqdm = tqdm_quiet


def sat(name: str) -> types.ModuleType:
    """One imported stable-audio-tools module by short name (see :func:`import_sat`)."""
    return import_sat()[name]


def placeholders_used() -> list[str]:
    """Which optional packages were stood in by placeholders (for ``doctor``)."""
    import_sat()
    return sorted(_placeholders_used)
