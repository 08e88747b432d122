"""Make the concept vectors the shipped presets steer with.

    .venv/bin/python tools/make_vectors.py --source demo   # presets/vectors/demo/, ~10 min on 2 cores
    .venv/bin/python tools/make_vectors.py --source tiny   # presets/vectors/tiny/, seconds

For each concept in engine/evaluation/concepts.py (the same prompts the benchmark uses):

1. *Where* -- the layers are measured, not guessed (``--layers auto``, the
   default for the demo model): activation patching of cross-attention
   keys/values over counterfactual prompt pairs (TADA Eq. 2) gives each layer's
   impact and the functional window; per-layer linear probes (5-fold CV) give a
   second ranking, recorded beside it. A concept whose prompts do not move the
   descriptor enough for Eq. 2 (the model does not follow that word well) takes
   the probes' layers instead, and the file says which method chose.
2. *What* -- CAA (difference of means of the cross-attention outputs, positive
   minus negative prompts, conditional rows, averaged over frames and steps) at
   those layers, unnormalised: alpha = 1 adds the mean difference the words
   themselves make, so a preset's alpha range reads as "times the prompt's own
   effect".

Writes ``<concept>.safetensors`` per concept and ``layers.json`` (per-layer
impact / probe accuracy, chosen layers, method, model fingerprint) into the
output folder. ``--every-layer CONCEPT`` writes that concept's file at every
layer instead (the preset's knob then names the chosen ``layers``), so another
knob can be orthogonalised against it at that knob's own layers: the engine
orthogonalises only where both vector files have a layer. Vector files record
the model's fingerprint: a preset must name the same model. The tiny model has
random weights, so its vectors carry no musical meaning; they exist so tests
and the bridge run end to end in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

PRESETS = Path(__file__).resolve().parents[1] / "presets"
DEFAULT_CONCEPTS = {"tiny": ("mood", "tempo", "brightness"),
                    "demo": ("mood", "tempo", "brightness", "instrument", "drums", "density")}


def _layers_for(model, concept, args) -> dict:
    """Choose the layers for ``concept`` as ``--layers`` says; returns the record for layers.json."""
    if args.layers == "all":
        return {"layers": list(range(model.num_layers)), "method": "all"}
    if args.layers != "auto":
        return {"layers": [int(x) for x in args.layers.split(",")], "method": "given"}
    from steerbridge.engine.localisation.patching import activation_patching
    from steerbridge.engine.localisation.probes import probe_layers

    gen = dict(seconds=args.seconds, steps=args.steps, cfg_scale=args.cfg_scale)
    patch = activation_patching(model, concept=concept.name, pairs=concept.pairs()[:args.pairs],
                                score=concept.score, seeds=tuple(range(args.seeds)), max_width=args.width, **gen)
    gap = (patch.target_score - patch.source_score) / concept.scale
    pos, neg = concept.prompts()
    # Probes too, always: the second opinion the layer choice is reported against.
    probe = probe_layers(model, positive=pos, negative=neg, concept=concept.name, top_k=args.width,
                         per_step=True, **gen)
    record = {"patching": patch.as_dict(), "prompt_gap_in_scale_units": gap, "probes": probe.as_dict(),
              "patching_and_probes_share_a_layer": bool(set(patch.functional) & set(probe.top))}
    if patch.functional and gap >= args.min_gap:
        return {**record, "layers": list(patch.functional), "method": "patching"}
    why = (f"patching: the prompts moved {concept.descriptor} by only {gap:.2f} x {concept.scale} "
           f"(< --min-gap {args.min_gap}), so Eq. 2 is noise")
    return {**record, "layers": sorted(probe.top), "method": "probes", "why": why}


def _heatmaps(report: dict, n_layers: int, folder: Path) -> None:
    from steerbridge.bridge.reports.benchplots import impact_heatmap

    measured = {c: r for c, r in report["concepts"].items() if "patching" in r}
    if not measured:
        return
    chosen = {c: r["layers"] for c, r in measured.items()}
    for key, field, title in (("patching", "impact", "activation patching impact (TADA Eq. 2)"),
                              ("probes", "accuracy", "probe accuracy (5-fold CV)")):
        rows = {c: [float("nan") if v is None else v for v in r[key][field]] for c, r in measured.items()}
        png = impact_heatmap(rows, list(range(n_layers)), folder / f"layers_{key}.png", title=title,
                             functional=chosen)
        print(f"heat map: {png}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--source", default="demo", help="model source: demo, tiny or a model folder")
    ap.add_argument("--out", type=Path, help="output folder (default presets/vectors/<source>)")
    ap.add_argument("--concept", action="append", default=[], help="concept (repeatable; default: all shipped)")
    ap.add_argument("--layers", default=None, help="auto (measure), all, or comma-separated layers "
                                                   "(default: auto for demo, all for tiny)")
    ap.add_argument("--pairs", type=int, default=4, help="patching pairs per concept")
    ap.add_argument("--seeds", type=int, default=2, help="patching seeds per pair")
    ap.add_argument("--width", type=int, default=2, help="widest functional window (layers)")
    ap.add_argument("--min-gap", type=float, default=0.5,
                    help="least prompt effect (in concept scale units) for patching to decide")
    ap.add_argument("--pictures", type=Path, help="folder for the heat maps (patching impact, probe accuracy)")
    ap.add_argument("--every-layer", action="append", default=[], metavar="CONCEPT",
                    help="write CONCEPT's file at every layer (repeatable): knobs orthogonalised against it then "
                         "have a shared layer; its own knob names the chosen layers")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    ap.add_argument("--cfg-scale", type=float, default=None, help="CFG scale (default: the model's)")
    ap.add_argument("--bpm", type=float, default=None,
                    help="record the CAA vectors at this tempo (a model with a beat input, e.g. the preset's tempo "
                         "knob default, as the bridge plays it; kept in the vector's meta); localisation renders "
                         "without it")
    args = ap.parse_args(argv)

    from steerbridge import engine
    from steerbridge.engine.evaluation.concepts import get_concept

    name = args.source if args.source in DEFAULT_CONCEPTS else Path(args.source).name
    out = args.out or PRESETS / "vectors" / name
    args.layers = args.layers or ("all" if args.source == "tiny" else "auto")
    model = engine.load_model(args.source)
    defaults = model.adapter.options  # the model family's own steps / CFG (config "steerbridge")
    args.steps = args.steps or defaults.get("steps", 8)
    args.cfg_scale = args.cfg_scale or defaults.get("cfg_scale", 6.0)
    concepts = args.concept or list(DEFAULT_CONCEPTS.get(args.source, DEFAULT_CONCEPTS["demo"]))
    if unknown := sorted(set(args.every_layer) - set(concepts)):
        ap.error(f"--every-layer {', '.join(unknown)}: not among the concepts made here ({', '.join(concepts)})")
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"model": model.source, "fingerprint": model.fingerprint, "steps": args.steps, "bpm": args.bpm,
                    "cfg_scale": args.cfg_scale, "seconds": args.seconds, "concepts": {}}
    for concept in map(get_concept, concepts):
        t0 = time.perf_counter()
        chosen = _layers_for(model, concept, args)
        pos, neg = concept.prompts()
        every = concept.name in args.every_layer
        vector = engine.extract_caa(model, positive=pos, negative=neg, concept=concept.name, site="cross_attn",
                                    layers=None if every else chosen["layers"], seconds=args.seconds,
                                    steps=args.steps, cfg_scale=args.cfg_scale, bpm=args.bpm)
        path = out / f"{concept.name}.safetensors"
        engine.save_vector(vector, path)
        report["concepts"][concept.name] = {**chosen, "file": path.name, "file_layers": list(vector.layers),
                                            "seconds_taken": time.perf_counter() - t0}
        knob = f"; the preset's knob needs layers = {chosen['layers']}" if every else ""
        print(f"{concept.name}: layers {chosen['layers']} by {chosen['method']} -> {path} "
              f"({time.perf_counter() - t0:.0f} s){knob}", flush=True)
    if args.pictures is not None:
        _heatmaps(report, model.num_layers, args.pictures)
    tmp = out / "layers.json.tmp"
    tmp.write_text(json.dumps(report, indent=1, default=float))
    os.replace(tmp, out / "layers.json")
    print(f"wrote {out / 'layers.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
