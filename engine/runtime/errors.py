"""Engine errors: plain-text messages that say what was wrong and how to fix it.

They carry only a string, so they pickle cleanly across the worker-process
boundary and print well in the CLI.
"""

from __future__ import annotations

__all__ = ["EngineError", "ModelLoadError", "VectorMismatchError", "VectorFileError", "RenderCancelled"]


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ModelLoadError(EngineError):
    """A model source could not be loaded (missing files, bad keys, needs downloads)."""


class VectorFileError(EngineError):
    """A vector file is unreadable or malformed."""


class VectorMismatchError(VectorFileError):
    """A vector was made for another model or another site."""


class RenderCancelled(EngineError):
    """A render was cancelled between diffusion steps."""
