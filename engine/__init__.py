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
    "extract_caa", "extract_austeer", "activation_patching", "functional_layers", "probe_layers",
    "train_sae", "sae_vector", "render_blend", "run_bench", "BenchConfig", "CONCEPTS", "get_concept",
]

# Research tools load on first use: the live server never pays for them.
_LAZY = {
    "extract_caa": "engine.extract", "extract_austeer": "engine.austeer",
    "activation_patching": "engine.patching", "functional_layers": "engine.patching",
    "probe_layers": "engine.probes", "train_sae": "engine.sae", "sae_vector": "engine.sae",
    "render_blend": "engine.prompt_blend", "run_bench": "engine.bench", "BenchConfig": "engine.bench",
    "CONCEPTS": "engine.concepts", "get_concept": "engine.concepts",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
