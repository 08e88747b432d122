"""steerbridge engine: models, steering, vectors, rendering. Knows torch; never Qt, OSC or MIDI.

The public API below is what the bridge, the GUI and users' scripts import
(``from steerbridge.engine import load_model``). Every name loads on first use,
so importing a torch-free part of the engine (``steerbridge.engine.vocab``)
does not import torch, and the live server never pays for the research tools.

Sub-packages: ``runtime`` (load, steer, render), ``adapters`` (model families),
``onnx``, ``extraction``, ``localisation``, ``evaluation``, ``demo``.
"""

from __future__ import annotations

import importlib
import typing as tp

# Public name -> the module that defines it (loaded on first use).
_RUNTIME = "steerbridge.engine.runtime"
_WHERE = {
    **dict.fromkeys(("EngineError", "ModelLoadError", "RenderCancelled", "VectorFileError", "VectorMismatchError"),
                    f"{_RUNTIME}.errors"),
    **dict.fromkeys(("Render", "RenderRequest", "SteerableModel", "load_model"), f"{_RUNTIME}.render"),
    **dict.fromkeys(("Steering", "SteeringTerm"), f"{_RUNTIME}.steering"),
    **dict.fromkeys(("ConceptVector", "VectorMeta", "load_vector", "save_vector"), f"{_RUNTIME}.vectors"),
    "extract_caa": "steerbridge.engine.extraction.caa", "extract_austeer": "steerbridge.engine.extraction.austeer",
    "activation_patching": "steerbridge.engine.localisation.patching",
    "functional_layers": "steerbridge.engine.localisation.patching",
    "probe_layers": "steerbridge.engine.localisation.probes",
    "train_sae": "steerbridge.engine.extraction.sae", "sae_vector": "steerbridge.engine.extraction.sae",
    "render_blend": "steerbridge.engine.extraction.prompt_blend",
    "run_bench": "steerbridge.engine.evaluation.bench", "BenchConfig": "steerbridge.engine.evaluation.bench",
    "CONCEPTS": "steerbridge.engine.evaluation.concepts", "get_concept": "steerbridge.engine.evaluation.concepts",
}
__all__ = list(_WHERE)


def __getattr__(name: str) -> tp.Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'steerbridge.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
