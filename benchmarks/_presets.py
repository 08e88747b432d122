"""Presets with any number of knobs, made from a shipped preset's knobs (for the scaling benchmarks).

Knob i is the shipped preset's vector knob ``i % n`` (its vector, range,
curve and stops; a tempo knob, which steers no vector, is left out) renamed
``<name><i // n>`` for the copies, without MIDI/OSC bindings or
orthogonalisation, so 2, 6, 12 or 16 knobs steer real vectors of the model.
A copy's range is the original's scaled by ``1 / (1 + i // n / 8)`` (alpha 0
stays at the same knob position): with the same range its stops would be the
same renders as the original's, served by the cache, and a scaling benchmark
such as scene_ready would look cheaper than a preset of distinct knobs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from steerbridge.bridge.presets.model import Preset, load_preset, save_preset

__all__ = ["knob_preset", "ROOT"]

ROOT = Path(__file__).resolve().parent.parent


def knob_preset(count: int, *, base: str = "demo", steps: int | None = None, seconds: float | None = None,
                save_to: Path | None = None) -> Preset:
    """``presets/<base>.toml`` with ``count`` knobs; saved (vector paths re-based) when ``save_to`` is given."""
    shipped = load_preset(ROOT / "presets" / f"{base}.toml")
    vector_knobs = [k for k in shipped.knobs if not k.is_tempo]
    n = len(vector_knobs)
    knobs = []
    for i in range(count):
        k = vector_knobs[i % n]
        name = k.name if i < n else f"{k.name}{i // n}"
        scale = 1.0 / (1.0 + (i // n) / 8.0)
        knobs.append(replace(k, name=name, midi=None, osc=None, orthogonalize_against=(),
                             vector=str(shipped.vector_path(k)), alpha_min=k.alpha_min * scale,
                             alpha_max=k.alpha_max * scale))
    preset = replace(shipped, knobs=tuple(knobs),
                     model=replace(shipped.model, steps=steps or shipped.model.steps),
                     scene=replace(shipped.scene, seconds=seconds or shipped.scene.seconds))
    return save_preset(preset, save_to) if save_to is not None else preset
