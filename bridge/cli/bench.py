"""`steerbridge bench`: steering methods side by side, with a markdown report and pictures."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from steerbridge.bridge.cli.common import add_model_flags

__all__ = ["register", "set_threads"]

EPILOG = """examples:
  steerbridge bench --model tiny --out out/bench --quick
  steerbridge bench --model demo --out out/bench --json
  steerbridge bench --model demo --out out/bench --concept mood --concept tempo --alphas 0.25,0.5,1
  steerbridge bench --model demo --out out/bench --ray auto   # renders on a Ray cluster, same results

Runs CAA, AUSteer, SAE (each on the functional layers found by activation patching, on
all layers, and on all but the functional ones) and the prompt-blend baseline, for each
concept, on held-out prompts, at +-alphas. With two or more concepts, their localized CAA
vectors are then steered in pairs and triples at the largest alpha, and mood is compared
with mood orthogonalised against tempo (--no-multi skips this). Writes DIR/report.md,
DIR/*.png, DIR/summary.json and the vectors (DIR/vectors/*.safetensors); prints the
headline figures last, one per line, or the whole summary with --json."""


def set_threads(threads: int | None, *, quick: bool) -> None:
    """Torch threads: --threads, else 1 for --quick (short clips gain nothing from a second
    thread, and on a busy 2-core machine two threads spin-wait: measured 50x slower)."""
    import torch

    if threads is not None or quick:
        torch.set_num_threads(threads or 1)


def register(sub: argparse._SubParsersAction) -> None:
    from steerbridge.bridge.cli.common import add_json_flag

    p = sub.add_parser("bench", help="compare steering methods x layer sets x concepts, with a report",
                       description="Benchmark CAA, AUSteer, SAE and a prompt-blend baseline on localized, "
                                   "all-layer and ablated layer sets (TADA's protocol, model-free descriptors).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(p)
    p.add_argument("--out", type=Path, default=Path("out/bench"),
                   help="output folder for report.md, PNGs, summary.json (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="CI size: one concept, one prompt, short clips (<2 min)")
    p.add_argument("--concept", action="append", default=[], help="concept to include (repeatable; default: "
                                                                  "mood, tempo, brightness)")
    p.add_argument("--method", action="append", default=[], choices=("caa", "austeer", "sae", "prompt"),
                   help="method to include (repeatable; default: all)")
    p.add_argument("--alphas", help="comma-separated alpha magnitudes, each swept with both signs")
    p.add_argument("--seconds", type=float)
    p.add_argument("--steps", type=int, help="diffusion steps (default: the model's own, else 8)")
    p.add_argument("--cfg-scale", type=float, help="classifier-free guidance (default: the model's own, else 6; "
                                                   "the distilled demo model has guidance built in: 1)")
    p.add_argument("--seed", type=int)
    p.add_argument("--no-multi", action="store_true", help="skip the multi-concept part (pairs, triples, mood "
                                                            "orthogonalised against tempo)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 with --quick)")
    from steerbridge.bridge.cli.ray_flags import add_ray_flags

    add_ray_flags(p)
    add_json_flag(p)
    p.set_defaults(func=run)


def _config(args: argparse.Namespace):
    from dataclasses import replace

    from steerbridge.engine.evaluation.bench import BenchConfig

    cfg = BenchConfig.quick() if args.quick else BenchConfig()
    changes: dict = {}
    if args.concept:
        changes["concepts"] = tuple(args.concept)
    if args.method:
        changes["methods"] = tuple(dict.fromkeys(args.method))
    if args.alphas:
        try:
            changes["alphas"] = tuple(float(a) for a in args.alphas.split(","))
        except ValueError:
            raise ValueError(f"--alphas {args.alphas!r} must be comma-separated numbers, e.g. 0.25,0.5,1") from None
    if args.no_multi:
        changes["multi"] = False
    for name in ("seconds", "steps", "cfg_scale", "seed"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    return replace(cfg, **changes)


def _model_defaults(cfg, model, args: argparse.Namespace):
    """Steps and CFG the model's config asks for (its "steerbridge" section), where the command line is silent.

    A distilled model renders in fewer steps with guidance built in; benchmarking it at another model's
    settings would measure a model nobody plays. ``--quick`` keeps its CI sizes."""
    from dataclasses import replace

    own = getattr(model.adapter, "options", {})
    changes = {name: own[name] for name in ("steps", "cfg_scale")
               if name in own and getattr(args, name) is None and not args.quick}
    return replace(cfg, **changes)


def _clean(v):
    """JSON-safe: nan -> None, tuples -> lists, int keys -> str."""
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def run(args: argparse.Namespace) -> int:
    from steerbridge.bridge.cli.common import emit_json, fail

    from steerbridge.bridge.cli.ray_flags import ray_pool, ray_problem

    if (problem := ray_problem(args)) is not None:
        return fail(problem)
    quiet = args.json
    t0 = time.perf_counter()
    try:
        set_threads(args.threads, quick=args.quick)
        from steerbridge import engine
        from steerbridge.engine.evaluation.bench import run_bench

        cfg = _config(args)
        model = engine.load_model(args.model, family=args.family)
        cfg = _model_defaults(cfg, model, args)
        log = None if quiet else (lambda msg: print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr))
        with ray_pool(args, args.model, model) as pool:
            res = run_bench(model, cfg, log=log, pool=pool)
    except (ValueError, OSError) as exc:
        return fail(str(exc))
    except Exception as exc:  # EngineError and friends: a message, not a traceback
        if type(exc).__module__.startswith("engine"):
            return fail(str(exc))
        raise
    from dataclasses import asdict

    from steerbridge.bridge.reports.benchplots import bench_markdown, curve_grid, impact_heatmap, retained_bars

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for key, vec in res.vectors.items():
        engine.save_vector(vec, out / "vectors" / f"{key.replace('/', '_')}.safetensors")
    from steerbridge.engine.extraction.sae import save_sae

    for layer, sae in res.saes.items():
        save_sae(sae, out / "saes" / f"cross_attn_layer{layer}.safetensors", layer=layer, site="cross_attn",
                 fingerprint=res.fingerprint, stats=res.sae_stats.get(layer))
    layers = list(range(model.num_layers))
    loc = res.localization
    pictures = {
        "patching impact": impact_heatmap({c: v["patching"]["impact"] for c, v in loc.items()}, layers,
                                          out / "patching_heatmap.png", title="activation patching impact (Eq. 2)",
                                          functional={c: v["functional"] for c, v in loc.items()}),
        "probe accuracy": impact_heatmap({c: v["probes"]["accuracy"] for c, v in loc.items()}, layers,
                                         out / "probe_heatmap.png", title="probe accuracy (k-fold CV)"),
    }
    for concept in cfg.concepts:
        curves = {k.split("/", 1)[1]: v for k, v in res.curves.items() if k.startswith(f"{concept}/")}
        pictures[f"{concept} curves"] = curve_grid(curves, res.cutoffs[concept], out / f"curves_{concept}.png",
                                                   title=f"{concept}: alignment vs preservation")
    multi = res.multi.as_dict() if res.multi is not None else None
    if multi is not None and not multi["skipped"]:
        pictures["multi-concept retained alignment"] = retained_bars(multi, out / "multi_retained.png")
    summary = _clean({
        "model": res.model, "fingerprint": res.fingerprint, "config": asdict(cfg), "renders": res.renders,
        "elapsed_s": round(res.elapsed_s, 2), "localization": loc, "rows": [r.as_dict() for r in res.rows],
        "verdicts": res.summary(), "cutoffs": res.cutoffs, "prompt_swap": res.prompt_swap,
        "sae_stats": res.sae_stats, "multi": multi,
    })
    rel = {k: Path(v).name for k, v in pictures.items()}
    sections = [res.multi.markdown()] if res.multi is not None else []
    (out / "report.md").write_text(bench_markdown(summary, rel, sections=sections))
    summary.update(report=str(out / "report.md"), pictures=[str(p) for p in pictures.values()],
                   total_s=round(time.perf_counter() - t0, 2))
    import json

    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if args.json:
        emit_json(summary)
        return 0
    print(f"report: {out / 'report.md'}")
    for key, v in summary["verdicts"].items():
        print(f"{key}_auc_localized: {v['localized']}")
        print(f"{key}_localized_beats_all: {v['beats_all']}")
    if multi is not None and multi["ortho"]["skipped"] is None:
        print(f"mood_ortho_tempo_drift_remaining: {multi['ortho']['drift_remaining']}")
    print(f"renders: {res.renders}")
    print(f"bench_s: {summary['total_s']}")
    return 0
