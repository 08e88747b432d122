"""The demo model's acceptance numbers in one run: JSON, model-card markdown, pictures.

    .venv/bin/python benchmarks/demo_acceptance.py [--preset presets/demo.toml] [--out out/acceptance]

1. Prompt following (demo model family, i.e. a MiniLM conditioner, only): same-seed caption
   pairs differing in one attribute word (engine/demo/follow.py). Pass: the descriptor moves
   the prompted way in >= 85 % of pairs, paired effect size >= 0.8, mean shift >= 1/3 of the
   training data's class gap (measured on freshly synthesised corpus clips). Fast/slow is
   also judged by librosa's tempo estimate (reported, not judged: no class gap).
2. Steering with the preset's vectors, built as the live bridge builds them (render_job_for +
   JobRunner: the knob's layers, alpha units, CFG mode, orthogonalisation, other knobs at 0):
   held-out neutral prompts (neither vector extraction nor tools/calibrate_ranges.py uses them),
   one held-out seed, 7 alphas evenly across [alpha_min, alpha_max] plus the alpha = 0
   reference. Pass (benchmarks/_targets.py, per knob): mean per-prompt Spearman rho(alpha,
   descriptor) >= 0.9 for brightness, tempo and mood (tempo: librosa's estimate too; mood: the
   mode score and basic-pitch's major/minor, shifting >= half the corpus' major-minor gap),
   >= 0.8 for instrument, drums and density; relative shift (mean at alpha_max - mean at
   alpha_min) / |mean at 0| >= 30 % for brightness and tempo; and always every render within
   the prompt-swap distance of its alpha = 0 render (the median, over ordered pairs of
   different neutral prompts, of the preservation distance between their alpha = 0 renders).
3. Speed: a 4 s loop at the preset's steps and CFG (torch), one warm-up then the median of 5
   renders, unsteered and with every knob at alpha_max. Pass: the slower median <= 0.35 s.
4. Entanglement (benchmarks/_entangle.py; --skip-entangle skips it, benchmarks/demo_entanglement.py runs
   it alone): the mood knob over the same alphas, raw and orthogonalised against the tempo knob's
   vector. Pass: >= 70 % of the mood shift kept with <= 10 % of the raw vector's tempo drift.
Brightness and tempo (and speed) gate the verdict; the rest is reported the same way. Writes
acceptance.json, acceptance.md, sweep_<knob>.png, curve_<knob>.png and entangle.png into --out; progress on
stderr; headline figures last, one per line, as ``name: value``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import sys
import time
import typing as tp
import warnings
from pathlib import Path

import numpy as np

from steerbridge.bridge.engine_link.jobs import JobFailed, RenderResult, render_job_for
from steerbridge.bridge.engine_link.worker import JobRunner
from steerbridge.bridge.presets.model import Knob, Preset, load_preset
from steerbridge.bridge.reports.pictures import sweep_grid
from steerbridge.engine.evaluation.concepts import CONCEPTS, DESCRIPTORS, HELD_OUT_BASES, SECOND_OPINIONS
from steerbridge.engine.evaluation.metrics import preservation_distance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _acceptance_report import clean, headlines, markdown  # noqa: E402  (sibling module: the report's text)
from _entangle import ENTANGLE, entangle_part  # noqa: E402
from _follow import follow_part as _follow_part, is_demo_family  # noqa: E402
from _targets import FOLLOW, GATING, SPEED, STEER, STEER_TARGETS, missed_targets  # noqa: E402
from _tonal import TONAL, tonal_part  # noqa: E402

HELD_OUT_SEED = 4321  # steering renders: a seed neither extraction (0) nor range calibration uses
_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.0f} s] {msg}", file=sys.stderr, flush=True)


def render(runner: JobRunner, job: tp.Any) -> RenderResult:
    """One job through the bridge's own job runner; raises with the engine's message on failure."""
    events: list[tp.Any] = []
    runner.run(0, job, emit=events.append, cancelled=lambda: False)
    for e in events:
        if isinstance(e, JobFailed):
            raise RuntimeError(f"{e.kind}: {e.error}")  # noqa: TRY004
    return next(e for e in events if isinstance(e, RenderResult))


# --- 1. prompt following: benchmarks/_follow.py -----------------------------------------------------
def follow_part(runner: JobRunner, preset: Preset, args: argparse.Namespace) -> dict:
    return _follow_part(runner, preset, args, log=log, second_opinion=second_opinion)


# --- 2. steering -----------------------------------------------------------------------------------
def sweep_alphas(knob: Knob, n: int) -> list[float]:
    alphas = [float(a) for a in np.linspace(knob.alpha_min, knob.alpha_max, n)]
    return [0.0 if abs(a) < 1e-9 * max(1.0, abs(knob.alpha_max - knob.alpha_min)) else a for a in alphas]


def spearman(x: tp.Sequence[float], y: tp.Sequence[float]) -> float:
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: nan, reported as such
        rho = float(spearmanr(x, y).statistic)
    return rho if math.isfinite(rho) else math.nan


def references(runner: JobRunner, preset: Preset, prompts: tuple[str, ...], args: argparse.Namespace,
               cache: dict) -> tuple[dict[str, np.ndarray], float]:
    """alpha = 0 renders of ``prompts`` (cached) and their prompt-swap distance (median over pairs)."""
    for p in prompts:
        if p not in cache:
            cache[p] = render(runner, render_job_for(preset, {}, prompt=p, seed=args.seed,
                                                     seconds=args.seconds)).audio
    sr = runner.model.sample_rate
    d = [preservation_distance(cache[a], cache[b], sr) for a in prompts for b in prompts if a != b]
    return {p: cache[p] for p in prompts}, float(np.median(d)) if d else math.nan


def sweep(runner: JobRunner, preset: Preset, knob: Knob, concept: tp.Any, alphas: list[float],
          args: argparse.Namespace, cache: dict) -> dict:
    """Each neutral prompt rendered at every alpha of ``knob`` (alpha 0: the cached reference):
    descriptor values and preservation distances [prompt][alpha], the prompt-swap cutoff, the
    references and the first prompt's renders (for pictures)."""
    prompts = concept.bases(args.prompts)
    refs, cutoff = references(runner, preset, prompts, args, cache)
    sr = runner.model.sample_rate
    values, dists, first = [], [], []
    extra: dict[str, list[list[float]]] = {name: [] for name in SECOND_OPINIONS.get(concept.name, ())}
    for i, p in enumerate(prompts):
        log(f"steering {knob.name}: '{p}' x {len(alphas)} alphas")
        row, drow = [], []
        for a in alphas:
            audio = refs[p] if a == 0.0 else render(runner, render_job_for(
                preset, {knob.name: a}, prompt=p, seed=args.seed, seconds=args.seconds)).audio
            row.append(concept.score(audio, sr))
            drow.append(preservation_distance(audio, refs[p], sr))
            for name in extra:
                if len(extra[name]) <= i:
                    extra[name].append([])
                extra[name][i].append(second_opinion(name, audio, sr))
            if i == 0:
                first.append((f"alpha {a:+.2f}", audio))
        values.append(row)
        dists.append(drow)
    return {"prompts": prompts, "refs": refs, "cutoff": cutoff, "values": values, "dists": dists, "first": first,
            "extra": extra}


def second_opinion(name: str, audio: np.ndarray, sr: int) -> float:
    """An independent descriptor (librosa tempo, basic-pitch mode); nan when its extra is missing."""
    try:
        return float(DESCRIPTORS[name](audio, sr))
    except (ImportError, RuntimeError) as exc:  # LibrosaMissing / BasicPitchMissing are RuntimeErrors
        log(f"second opinion {name} unavailable: {exc}")
        return math.nan


def opinion_summary(alphas: list[float], rows: list[list[float]]) -> dict:
    rhos = [spearman(alphas, r) for r in rows]
    mean = np.nanmean(rows, axis=0) if rows else np.array([math.nan])
    return {"descriptors": rows, "rho_per_prompt": rhos,
            "rho_mean": float(np.nanmean(rhos)) if any(math.isfinite(r) for r in rhos) else math.nan,
            "shift": float(mean[-1] - mean[0])}


def steer_knob(runner: JobRunner, preset: Preset, knob: Knob, args: argparse.Namespace, cache: dict) -> dict:
    concept = CONCEPTS.get(knob.name)
    if concept is None:
        return {"skipped": f"'{knob.name}' is not a concept in steerbridge.engine.evaluation.concepts ({', '.join(CONCEPTS)}): "
                           "no descriptor to judge it by"}
    alphas = sweep_alphas(knob, args.alphas)
    sw = sweep(runner, preset, knob, concept, alphas, args, cache)
    prompts, refs, cutoff, values, dists, first = (sw[k] for k in ("prompts", "refs", "cutoff", "values", "dists",
                                                                    "first"))
    sr = runner.model.sample_rate
    ref = [concept.score(refs[p], sr) for p in prompts]
    rhos = [spearman(alphas, row) for row in values]
    rho = float(np.nanmean(rhos)) if any(math.isfinite(r) for r in rhos) else math.nan
    mean = np.mean(values, axis=0)
    base = abs(float(np.mean(ref)))
    rel = float((mean[-1] - mean[0]) / base) if base > 0 else math.nan
    max_d = [max(r) for r in dists]
    within = [d <= cutoff for d in max_d]
    res = {"concept": concept.name, "descriptor": concept.descriptor, "label": concept.label,
           "layers": list(knob.layers) if knob.layers else "all in the vector file",
           "orthogonalize_against": list(knob.orthogonalize_against), "alpha_min": knob.alpha_min,
           "alpha_max": knob.alpha_max, "alphas": alphas, "prompts": list(prompts), "descriptors": values,
           "reference": {"alpha": 0.0, "in_sweep": 0.0 in alphas, "descriptors": ref},
           "rho_per_prompt": rhos, "rho_mean": rho, "relative_shift": rel,
           "shift_in_scale_units": float((mean[-1] - mean[0]) / concept.scale), "distances": dists,
           "prompt_swap_distance": cutoff, "max_distance": max_d, "within": within, "all_within": all(within),
           "gating": knob.name in GATING}
    res["second_opinions"] = {name: opinion_summary(alphas, rows) for name, rows in sw["extra"].items()}
    gap = getattr(args, "gaps", {}).get("mode") if knob.name == "mood" else None
    if gap:  # mood: the shift as a fraction of the corpus' major-minor gap on the same descriptor
        res["shift_over_corpus_gap"] = float((mean[-1] - mean[0]) / gap)
    res["targets"] = STEER_TARGETS.get(knob.name, STEER)
    res["missed"] = missed_targets(res)
    res["pass"] = not res["missed"]
    res["pictures"] = pictures(knob.name, first, res, sr, args.out, args.seed)
    return res


def steer_part(runner: JobRunner, preset: Preset, args: argparse.Namespace) -> dict:
    cache: dict[str, np.ndarray] = {}
    knobs = {}
    for knob in preset.knobs:
        try:
            knobs[knob.name] = steer_knob(runner, preset, knob, args, cache)
        except RuntimeError as exc:  # e.g. a vector made for another model: report, judge the rest
            knobs[knob.name] = {"skipped": f"render failed: {exc}", "pass": False, "gating": knob.name in GATING}
        if "skipped" in knobs[knob.name]:
            log(f"steering {knob.name}: skipped ({knobs[knob.name]['skipped']})")
    return {"seed": args.seed, "seconds": args.seconds,
            "cutoff_rule": "prompt-swap distance = median over ordered pairs of different neutral prompts of "
                           "preservation_distance between their alpha = 0 renders (same seed)",
            "knobs": knobs}


def pictures(name: str, renders: list, res: dict, sr: int, out: Path, seed: int) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = sweep_grid(renders, sr, out / f"sweep_{name}.png", title=f"{name}: '{res['prompts'][0]}', seed {seed}")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for p, row, r0 in zip(res["prompts"], res["descriptors"], res["reference"]["descriptors"]):
        line, = ax.plot(res["alphas"], row, marker="o", label=p)
        ax.plot([0.0], [r0], marker="*", ms=11, color=line.get_color(), ls="none")
    ax.set_xlabel("alpha")
    ax.set_ylabel(res["descriptor"])
    ax.set_title(f"{name}: mean Spearman rho {res['rho_mean']:.2f} (star: alpha 0)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    curve = out / f"curve_{name}.png"
    fig.savefig(curve, dpi=110)
    plt.close(fig)
    return {"sweep": sweep.name, "curve": curve.name}


# --- 3. speed ----------------------------------------------------------------------------------------
def speed_part(runner: JobRunner, preset: Preset, args: argparse.Namespace, *, skip: set[str]) -> dict:
    import torch

    seconds, repeats = SPEED["seconds"], args.repeats
    out: dict[str, tp.Any] = {"backend": "torch", "threads": torch.get_num_threads(), "steps": preset.model.steps,
                              "cfg_scale": preset.model.cfg_scale, "loop_s": seconds, "repeats": repeats}
    full = {k.name: k.alpha_max for k in preset.knobs if k.name not in skip}
    for label, alphas in (("unsteered", {}), ("steered", full)):
        if label == "steered" and not full:
            continue
        if label == "unsteered":
            runner.model.detach_steering()  # no wrappers at all: the plain model's time
        job = render_job_for(preset, alphas, seed=args.seed, seconds=seconds)
        log(f"speed ({label}): 1 warm-up + {repeats} renders of {seconds:g} s")
        render(runner, job)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            render(runner, job)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        out[label] = {"times_s": times, "median_s": med, "realtime_factor": seconds / med}
    worst = max(out[k]["median_s"] for k in ("unsteered", "steered") if k in out)
    out.update(render_s=worst, realtime_factor=seconds / worst, passed=worst <= SPEED["max_render_s"])
    return out


# --- 4. entanglement (benchmarks/_entangle.py) -------------------------------------------------------
def entangle(runner: JobRunner, preset: Preset, args: argparse.Namespace) -> dict:
    alphas = sweep_alphas(preset.knob("mood"), args.alphas) if "mood" in preset.knob_names() else []
    seeds = [args.seed + i for i in range(args.entangle_seeds)]
    return entangle_part(runner, preset, prompts=args.prompts, alphas=alphas, seeds=seeds, seconds=args.seconds,
                         out=args.out, render=render, describe=second_opinion, log=log)


# --- report --------------------------------------------------------------------------------------------
def verdict(result: dict) -> dict[str, bool | None]:
    """Gating checks: True/False, or None when not measured (which fails the verdict)."""
    follow, knobs = result["follow"].get("contrasts", {}), result["steering"]["knobs"]
    gates: dict[str, bool | None] = {}
    for name in GATING:
        gates[f"follow_{name}"] = follow[name]["pass"] if name in follow else None
        gates[f"steer_{name}"] = knobs.get(name, {}).get("pass")
    return {**gates, "speed": result["speed"]["passed"]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", type=Path, default=Path("presets/demo.toml"), help="preset with the knobs to judge")
    ap.add_argument("--source", help="model source overriding the preset's (demo, tiny or a model folder)")
    ap.add_argument("--out", type=Path, default=Path("out/acceptance"), help="output folder")
    ap.add_argument("--pairs", type=int, default=32, help="prompt-following pairs per contrast")
    ap.add_argument("--gap-clips", type=int, default=300, help="corpus clips synthesised for the class gaps")
    ap.add_argument("--prompts", nargs="+", default=list(HELD_OUT_BASES),
                    help="neutral prompts for steering (instrument + noun; default: the held-out bases, which "
                         "neither vector extraction nor range calibration uses; the instrument knob uses "
                         "steerbridge.engine.evaluation.concepts' instrument-free held-out bases instead)")
    ap.add_argument("--seed", type=int, default=HELD_OUT_SEED,
                    help=f"seed of every steering and speed render (default {HELD_OUT_SEED}: not the preset "
                         "scene's seed, which tools/calibrate_ranges.py uses)")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of the steering renders")
    ap.add_argument("--alphas", type=int, default=7, help="alphas per knob, evenly across its range")
    ap.add_argument("--repeats", type=int, default=5, help="timed renders per speed measurement")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's; --quick: 1, which on a "
                                                "busy machine is far faster than threads spin-waiting)")
    ap.add_argument("--tonal-clips", type=int, default=12, help="held-out captions for tonal clarity (0: skip)")
    ap.add_argument("--skip-follow", action="store_true", help="skip part 1 (prompt following)")
    ap.add_argument("--skip-entangle", action="store_true", help="skip part 4 (entanglement)")
    ap.add_argument("--entangle-seeds", type=int, default=None,
                    help="seeds of part 4, from --seed up (default 3; --quick: 1)")
    ap.add_argument("--quick", action="store_true", help="smoke-run sizes: 2 pairs, 40 gap clips, 2 prompts, "
                                                         "1 s steering renders, 1 timed render, 1 thread")
    args = ap.parse_args(argv)
    if args.quick:
        args.pairs, args.gap_clips, args.prompts, args.tonal_clips = 2, 40, args.prompts[:2], 0
        args.seconds, args.repeats, args.threads = 1.0, 1, args.threads or 1
        args.entangle_seeds = args.entangle_seeds or 1
    args.prompts, args.entangle_seeds = tuple(args.prompts), args.entangle_seeds or 3
    args.command = shlex.join(["benchmarks/demo_acceptance.py", *(sys.argv[1:] if argv is None else argv)])
    return args


def open_runner(args: argparse.Namespace) -> tuple[Preset, JobRunner]:
    """The preset and a job runner holding its model (or ``args.source``'s), torch backend."""
    preset = load_preset(args.preset)
    source = args.source or preset.model_source()
    log(f"loading {source} (torch, {preset.model.device})")
    return preset, JobRunner(source, device=preset.model.device, backend="torch")


def run(args: argparse.Namespace) -> dict:
    preset, runner = open_runner(args)
    m = runner.model
    result: dict[str, tp.Any] = {
        "command": args.command, "preset": str(args.preset), "quick": args.quick,
        "model": {"source": str(m.source), "fingerprint": m.fingerprint, "demo_family": is_demo_family(m.config)},
        "settings": {k: getattr(preset.model, k) for k in ("steps", "cfg_scale", "sampler", "cfg_mode",
                                                           "start_step", "alpha_units")},
        "thresholds": {"follow": FOLLOW, "steer": STEER_TARGETS, "speed": SPEED, "tonal": TONAL, "entangle": ENTANGLE,
                       "gating": GATING}}
    result["follow"] = {"skipped": "--skip-follow"} if args.skip_follow else follow_part(runner, preset, args)
    if is_demo_family(m.config) and args.tonal_clips:
        runner.model.detach_steering()
        result["tonal"] = tonal_part(runner.model.model, clips=args.tonal_clips, steps=preset.model.steps,
                                     cfg_scale=preset.model.cfg_scale, out=args.out, log=log)
    result["steering"] = steer_part(runner, preset, args)
    result["entangle"] = {"skipped": "--skip-entangle"} if args.skip_entangle else entangle(runner, preset, args)
    failed = {n for n, k in result["steering"]["knobs"].items() if "render failed" in k.get("skipped", "")}
    result["speed"] = speed_part(runner, preset, args, skip=failed)
    result["gates"] = verdict(result)
    result["passed"] = all(v is True for v in result["gates"].values())
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return result


def main(argv: list[str] | None = None) -> int:
    global _T0
    _T0 = time.perf_counter()
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or threads)
    try:
        result = run(args)
    finally:
        torch.set_num_threads(threads)  # main() may run inside another process (the tests)
    result["elapsed_s"] = time.perf_counter() - _T0
    result = clean(result)
    (args.out / "acceptance.json").write_text(json.dumps(result, indent=1))
    (args.out / "acceptance.md").write_text(markdown(result))
    log(f"wrote {args.out / 'acceptance.json'} and acceptance.md in {result['elapsed_s']:.0f} s")
    print("\n".join(headlines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
