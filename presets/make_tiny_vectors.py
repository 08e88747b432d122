"""Make the concept vectors that presets/demo.toml steers with, for the tiny model.

    .venv/bin/python presets/make_tiny_vectors.py [--source tiny] [--out presets/vectors]

CAA (difference of means) on the cross-attention outputs, one vector per
concept, from a few contrastive prompt pairs. The tiny model has random
weights, so these vectors carry no musical meaning; they exist so the whole
bridge (presets, scheduler, player) runs end to end without a checkpoint.
Re-run it with ``--source demo`` or a model folder to make real ones (and
point a preset's [model] source at the same model: vector files record the
model's fingerprint and are refused by any other model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

CONCEPTS = {
    "mood": (["happy upbeat song, {base}"], ["sad melancholic song, {base}"]),
    "tempo": (["fast energetic song, {base}"], ["slow calm song, {base}"]),
    "brightness": (["bright airy song, {base}"], ["dark muffled song, {base}"]),
}
BASES = ["piano loop", "lofi beat"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="tiny", help="model source: tiny, demo or a model folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "vectors")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()

    import engine
    from engine.extract import expand_templates

    model = engine.load_model(args.source)
    for concept, (pos, neg) in CONCEPTS.items():
        vector = engine.extract_caa(
            model, positive=expand_templates(pos, BASES), negative=expand_templates(neg, BASES),
            concept=concept, site="cross_attn", seconds=args.seconds, steps=args.steps, normalize=True)
        path = args.out / f"{concept}.safetensors"
        engine.save_vector(vector, path)
        print(f"{concept}: {path} (layers {vector.layers[0]}..{vector.layers[-1]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
