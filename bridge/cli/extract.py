"""`steerbridge extract`: build a concept vector (CAA/DiffMean) from contrastive prompts."""

from __future__ import annotations

import argparse
from pathlib import Path

from steerbridge.bridge.cli.common import add_model_flags
from steerbridge.engine.vocab import (DEFAULT_CFG_SCALE, DEFAULT_SECONDS, DEFAULT_SITE, DEFAULT_STEPS, POSITIONS,
                                      SITES)

__all__ = ["register"]

EPILOG = """examples:
  steerbridge extract --model tiny --concept mood \\
      --positive "happy song, {base}" --negative "sad song, {base}" \\
      --base "piano loop" --base "synth pad" --layers 1,2 --out presets/vectors/tiny/mood.safetensors

Each {base} in a prompt is filled with every --base prompt (templates x bases, as in the
papers). Prompts can also come from files, one per line (--positive-file / --negative-file)."""


def register(sub: argparse._SubParsersAction) -> None:
    from steerbridge.bridge.cli.common import add_json_flag

    p = sub.add_parser("extract", help="extract a CAA concept vector from positive/negative prompts",
                       description="Record a site's activations during real sampling for positive and negative "
                                   "prompts and save mean(pos) - mean(neg) per layer as a vector file.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(p)
    p.add_argument("--concept", required=True, help="concept name stored in the file, e.g. mood")
    p.add_argument("--positive", action="append", default=[], help="positive prompt or template (repeatable)")
    p.add_argument("--negative", action="append", default=[], help="negative prompt or template (repeatable)")
    p.add_argument("--positive-file", type=Path, help="file of positive prompts, one per line")
    p.add_argument("--negative-file", type=Path, help="file of negative prompts, one per line")
    p.add_argument("--base", action="append", default=[], help="base prompt filling {base} (repeatable)")
    p.add_argument("--site", default=DEFAULT_SITE, choices=SITES, help="activation site (default: %(default)s)")
    p.add_argument("--layers", help="comma-separated layers (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--cfg-scale", type=float, default=DEFAULT_CFG_SCALE)
    p.add_argument("--position", choices=POSITIONS,
                   help="sequence positions recorded: all (diffusion), frames (generated frames) or eos (the "
                        "prompt's end in MusicGen-Melody); default: the model family's")
    p.add_argument("--per-step", action="store_true", help="keep one vector per diffusion step ([steps, d])")
    p.add_argument("--normalize", action="store_true", help="unit-normalise each layer's vector")
    p.add_argument("--out", type=Path, help="output .safetensors file (default: out/extract/CONCEPT.safetensors)")
    p.add_argument("--quiet", action="store_true")
    from steerbridge.bridge.cli.ray_flags import add_ray_flags

    add_ray_flags(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def _prompts(inline: list[str], file: Path | None, bases: list[str]) -> list[str]:
    from steerbridge.engine.extraction.caa import expand_templates

    lines = list(inline)
    if file is not None:
        lines += [ln.strip() for ln in file.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return expand_templates(lines, bases)


def run(args: argparse.Namespace) -> int:
    from steerbridge.bridge.cli.common import emit_json, fail

    if args.out is None:
        args.out = Path("out") / "extract" / f"{args.concept}.safetensors"
    if args.out.suffix != ".safetensors":
        return fail(f"--out {args.out} must end in .safetensors")
    try:
        pos = _prompts(args.positive, args.positive_file, args.base)
        neg = _prompts(args.negative, args.negative_file, args.base)
    except OSError as exc:
        return fail(f"cannot read prompts: {exc}")
    if not pos or not neg:
        return fail("give at least one --positive and one --negative prompt (or --positive-file/--negative-file)")
    from steerbridge.bridge.cli.ray_flags import ray_pool, ray_problem

    if (problem := ray_problem(args)) is not None:
        return fail(problem)
    from steerbridge import engine
    from steerbridge.bridge.cli.common import ProgressBar

    bar = ProgressBar(total=len(pos) + len(neg), desc=f"extract {args.concept}", unit="prompt",
                      quiet=args.quiet or args.json)
    try:
        model = engine.load_model(args.model, family=args.family)
        layers = [int(x) for x in args.layers.split(",")] if args.layers else None
        with ray_pool(args, args.model, model) as pool:
            vec = engine.extract_caa(model, positive=pos, negative=neg, concept=args.concept, site=args.site,
                                     layers=layers, seed=args.seed, seconds=args.seconds, steps=args.steps,
                                     cfg_scale=args.cfg_scale, per_step=args.per_step, normalize=args.normalize,
                                     position=args.position,
                                     progress=lambda done, total: bar.update_to(done), pool=pool)
        path = engine.save_vector(vec, args.out)
    except (engine.EngineError, ValueError) as exc:
        return fail(str(exc))
    finally:
        bar.close()
    norms = {str(l): round(float(vec.tensor(l).norm()), 6) for l in vec.layers}
    result = {"path": str(path), "concept": vec.concept, "site": vec.site, "layers": list(vec.layers),
              "fingerprint": vec.fingerprint, "vector_norms": norms,
              "site_norms": {str(k): round(v, 6) for k, v in vec.meta.site_norms.items()},
              "positive": len(pos), "negative": len(neg)}
    if args.json:
        emit_json(result)
    else:
        print(f"wrote {path}: '{vec.concept}' at {vec.site} layers {list(vec.layers)} "
              f"({len(pos)} positive / {len(neg)} negative prompts)")
    return 0
