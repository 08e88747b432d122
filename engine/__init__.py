"""steerbridge engine: models, steering, vectors, rendering. Knows torch; never Qt, OSC or MIDI."""

from steerbridge.engine.runtime.errors import EngineError, ModelLoadError, RenderCancelled, VectorFileError, VectorMismatchError
from steerbridge.engine.runtime.render import Render, RenderRequest, SteerableModel, load_model
from steerbridge.engine.runtime.steering import Steering, SteeringTerm
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta, load_vector, save_vector

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
    "extract_caa": "steerbridge.engine.extraction.caa", "extract_austeer": "steerbridge.engine.extraction.austeer",
    "activation_patching": "steerbridge.engine.localisation.patching", "functional_layers": "steerbridge.engine.localisation.patching",
    "probe_layers": "steerbridge.engine.localisation.probes", "train_sae": "steerbridge.engine.extraction.sae", "sae_vector": "steerbridge.engine.extraction.sae",
    "render_blend": "steerbridge.engine.extraction.prompt_blend", "run_bench": "steerbridge.engine.evaluation.bench", "BenchConfig": "steerbridge.engine.evaluation.bench",
    "CONCEPTS": "steerbridge.engine.evaluation.concepts", "get_concept": "steerbridge.engine.evaluation.concepts",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
