"""steerbridge engine: models, steering, vectors, rendering. Knows torch; never Qt, OSC or MIDI."""

from engine.errors import EngineError, ModelLoadError, RenderCancelled, VectorFileError, VectorMismatchError
from engine.render import Render, RenderRequest, SteerableModel, load_model
from engine.steering import Steering, SteeringTerm
from engine.vectors import ConceptVector, VectorMeta, load_vector, save_vector

__all__ = [
    "EngineError", "ModelLoadError", "RenderCancelled", "VectorFileError", "VectorMismatchError",
    "Render", "RenderRequest", "SteerableModel", "load_model",
    "Steering", "SteeringTerm",
    "ConceptVector", "VectorMeta", "load_vector", "save_vector",
    "extract_caa",
]


def __getattr__(name: str):  # lazy: extraction pulls in tqdm etc. only when used
    if name == "extract_caa":
        from engine.extract import extract_caa

        return extract_caa
    raise AttributeError(name)
