"""`steerbridge localize`: find the layers that carry a concept, for presets to use."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from steerbridge.bridge.cli.common import add_model_flags
from steerbridge.engine.vocab import DEFAULT_CFG_SCALE, DEFAULT_SECONDS, DEFAULT_STEPS

__all__ = ["register", "preset_snippet"]

EPILOG = """examples:
  steerbridge localize --model demo --concept tempo
  steerbridge localize --model demo --concept mood --method probes --out presets/mood_layers.toml
  steerbridge localize --model tiny --concept brightness --json --out out/brightness_layers.json

--method patching (default) renders each counterfactual pair with one layer's cross-attention
keys/values taken from the target prompt (TADA Eq. 2 impact per layer); --method probes fits a
logistic-regression probe per layer (k-fold CV) on positive vs negative activations.
--out FILE.toml writes a [[knob]]-ready snippet (layers = [...]); FILE.json the full result.
A heat-map PNG is written next to --out (or to out/localize/ without one)."""


def register(sub: argparse._SubParsersAction) -> None:
    from steerbridge.bridge.cli.common import add_json_flag

    p = sub.add_parser("localize", help="find the functional layers of a concept (patching or probes)",
                       description="Locate the cross-attention layers that carry a concept, by activation "
                                   "patching or by linear probes, and write them where a preset can use them.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(p)
    p.add_argument("--concept", required=True, help="a shipped concept (mood, tempo, brightness, drums)")
    p.add_argument("--method", default="patching", choices=("patching", "probes"))
    p.add_argument("--pairs", type=int, default=4, help="patching: counterfactual prompt pairs (default 4)")
    p.add_argument("--seeds", default="0", help="patching: comma-separated seeds (default 0)")
    p.add_argument("--top", type=int, default=2, help="most layers to report (default 2)")
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--cfg-scale", type=float, default=DEFAULT_CFG_SCALE)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", type=Path, help="write the layers: .toml (preset snippet) or .json (full result)")
    p.add_argument("--quiet", action="store_true")
    from steerbridge.bridge.cli.ray_flags import add_ray_flags

    add_ray_flags(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def preset_snippet(concept: str, layers: list[int], *, method: str, model: str, fingerprint: str) -> str:
    """A TOML fragment to paste into a preset's [[knob]] table (vector file still to be extracted)."""
    return (f"# steerbridge localize --concept {concept} --method {method}\n"
            f"# model {model} ({fingerprint})\n"
            f"[[knob]]\nname = \"{concept}\"\nlayers = [{', '.join(str(l) for l in layers)}]\n")


def run(args: argparse.Namespace) -> int:
    from steerbridge.bridge.cli.common import ProgressBar, emit_json, fail

    if args.out is not None and args.out.suffix not in (".toml", ".json"):
        return fail(f"--out {args.out} must end in .toml (preset snippet) or .json (full result)")
    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        return fail(f"--seeds {args.seeds!r} must be comma-separated integers, e.g. 0,1,2")
    from steerbridge.bridge.cli.ray_flags import ray_pool, ray_problem

    if (problem := ray_problem(args)) is not None:
        return fail(problem)
    from steerbridge.bridge.cli.bench import set_threads

    set_threads(args.threads, quick=False)
    from steerbridge import engine
    from steerbridge.engine.evaluation.concepts import get_concept
    from steerbridge.engine.runtime.errors import EngineError

    t0 = time.perf_counter()
    stack = contextlib.ExitStack()
    try:
        concept = get_concept(args.concept)
        model = engine.load_model(args.model, family=args.family)
        gen = dict(seconds=args.seconds, steps=args.steps, cfg_scale=args.cfg_scale)
        pool = stack.enter_context(ray_pool(args, args.model, model))  # closed in the finally below
    except EngineError as exc:
        stack.close()
        return fail(str(exc))
    try:
        if args.method == "patching":
            from steerbridge.engine.localisation.patching import activation_patching

            pairs = concept.pairs()[:args.pairs]
            bar = ProgressBar(total=len(pairs) * len(seeds) * (2 + model.num_layers), desc="patching",
                              quiet=args.quiet or args.json)
            try:
                res = activation_patching(model, concept=concept.name, pairs=pairs, score=concept.score, seeds=seeds,
                                          max_width=args.top, progress=lambda d, _t: bar.update_to(d), pool=pool,
                                          **gen)
            finally:
                bar.close()
            layers, values, label = list(res.functional), list(res.impact), "impact (Eq. 2)"
        else:
            from steerbridge.engine.localisation.probes import probe_layers

            pos, neg = concept.prompts()
            res = probe_layers(model, positive=pos, negative=neg, concept=concept.name, top_k=args.top,
                               seed=seeds[0], per_step=True, pool=pool, **gen)
            layers, values, label = list(res.top), list(res.accuracy), "probe accuracy"
    except EngineError as exc:
        return fail(str(exc))
    finally:
        stack.close()
    if not layers:
        detail = (f"target and source renders scored {res.target_score:.4g} vs {res.source_score:.4g} on "
                  f"'{concept.descriptor}', so Eq. 2 is undefined or no layer has positive impact"
                  if args.method == "patching" else "no probe result")
        return fail(f"no functional layers for '{concept.name}': {detail}. Use more --pairs or --seeds, longer "
                    "--seconds, or --method probes")
    from steerbridge.bridge.reports.benchplots import impact_heatmap

    folder = args.out.parent if args.out is not None else Path("out/localize")
    png = impact_heatmap({concept.name: values}, list(range(model.num_layers)),
                         folder / f"localize_{concept.name}_{args.method}.png",
                         title=f"{concept.name}: {label}", functional={concept.name: layers})
    result = {"concept": concept.name, "method": args.method, "layers": layers, "model": model.source,
              "fingerprint": model.fingerprint, "values": values, "picture": str(png), "result": res.as_dict(),
              "elapsed_s": round(time.perf_counter() - t0, 2)}
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.out.suffix == ".toml":
            args.out.write_text(preset_snippet(concept.name, layers, method=args.method, model=model.source,
                                               fingerprint=model.fingerprint))
        else:
            args.out.write_text(json.dumps(result, indent=1, default=str))
        result["out"] = str(args.out)
    if args.json:
        emit_json(result)
    else:
        shown = ", ".join(f"{l}:{v:.3g}" for l, v in enumerate(values))
        print(f"{concept.name} ({args.method}): layers {layers}", file=sys.stdout)
        print(f"  {label} per layer: {shown}")
        print(f"  heat map: {png}" + (f"; written: {args.out}" if args.out is not None else ""))
    return 0
