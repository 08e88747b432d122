"""Choose each knob's alpha range by measurement, for a preset's [[knob]] alpha_min / alpha_max.

    .venv/bin/python tools/calibrate_ranges.py [--preset presets/demo.toml] [--out out/ranges]

For every knob whose name is a concept in engine/evaluation/concepts.py: render the
neutral prompts (same seed) over a wide alpha grid through the bridge's own
render path (benchmarks/demo_acceptance.py's sweep), and score each render
by the concept's descriptor and by its preservation distance to the alpha = 0
render, relative to the prompt-swap distance. The recommended range is the
interval of grid alphas around 0 that moves the descriptor furthest while

- every render in it stays within the prompt-swap distance (the top of the
  range still sounds like the same loop, not another piece), and
- the descriptor follows alpha (mean per-prompt Spearman rho >= 0.9 on the
  grid points inside it; a concept judged by two descriptors, tempo and
  mood: the widest range whose lower rho of the two is within 0.05 of the
  best, the rule tools/choose_steering.py uses).

A tempo knob (``target = "bpm"``, a model with a beat input) is swept over
BPMs (``--bpm-grid``) around its default, which stands in for alpha 0; the
line printed for it gives the knob position of that default in the range.

Prints one line per knob and writes ``ranges.json`` (the whole grid, for the
model card). It does not edit the preset: copy the ranges you accept.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import typing as tp
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import demo_acceptance as acc  # noqa: E402  (the acceptance benchmark: the same render path and references)

from steerbridge.engine.evaluation.concepts import EXTRACT_BASES  # noqa: E402


def grid_scores(runner, preset, knob, concept, grid, args) -> dict:
    sw = acc.sweep(runner, preset, knob, concept, grid, args, {})
    return {"prompts": list(sw["prompts"]), "grid": grid, "descriptors": sw["values"],
            "second_opinions": sw["extra"], "center": knob.default_alpha if knob.is_tempo else 0.0,
            "distance_over_swap": [[d / sw["cutoff"] for d in row] for row in sw["dists"]],
            "prompt_swap_distance": sw["cutoff"]}


def mean_rho(grid: np.ndarray, rows: tp.Sequence, lo: int, hi: int) -> float:
    """Mean per-prompt Spearman rho of ``rows`` against the grid over points lo..hi (nan if none is defined)."""
    rhos = [acc.spearman(grid[lo:hi + 1], np.asarray(r)[lo:hi + 1]) for r in rows]
    return float(np.nanmean(rhos)) if any(math.isfinite(r) for r in rhos) else math.nan


def ranges(scores: dict, scale: float, max_distance: float = 1.0) -> tp.Iterator[dict]:
    """Every interval of >= 3 grid points around alpha 0 (a tempo knob: its default BPM, ``center``) whose
    renders all stay within ``max_distance`` times the prompt-swap distance, with its grid indices, mean rho
    and shift (in concept scale units)."""
    grid = np.array(scores["grid"])
    vals, ratios = np.array(scores["descriptors"]), np.array(scores["distance_over_swap"])
    zero = int(np.argmin(np.abs(grid - scores.get("center", 0.0))))
    for lo in range(0, zero + 1):
        for hi in range(zero, len(grid)):
            if hi - lo < 2 or ratios[:, lo:hi + 1].max() > max_distance:
                continue
            yield {"lo": lo, "hi": hi, "alpha_min": float(grid[lo]), "alpha_max": float(grid[hi]),
                   "rho": mean_rho(grid, vals, lo, hi),
                   "shift_units": float((vals[:, hi].mean() - vals[:, lo].mean()) / scale)}


def choose(scores: dict, scale: float, min_rho: float = 0.9, max_distance: float = 1.0) -> dict:
    """The valid range with rho >= ``min_rho`` that shifts the descriptor furthest (the first, on a tie)."""
    valid = [c for c in ranges(scores, scale, max_distance) if math.isfinite(c["rho"]) and c["rho"] >= min_rho]
    best = max(valid, key=lambda c: c["shift_units"], default=None)
    if best is not None:
        return {k: best[k] for k in ("alpha_min", "alpha_max", "rho", "shift_units")}
    return {"alpha_min": None, "alpha_max": None,
            "why": f"no interval of >= 3 grid points stays within {max_distance:g} x the prompt-swap "
                           f"distance with rho >= {min_rho:g}"}


# Lower rhos this close count as tied: a mean Spearman rho over four prompts moves by about this much from one
# seed to the next, and a range a third as wide is a worse knob than 0.03 of rho is a better one.
RHO_TIE = 0.05


def widest_near_best(items: list, rho: tp.Callable, shift: tp.Callable, floor: float | None = None):
    """Of ``items``, the widest ``shift`` among those whose ``rho`` is within RHO_TIE of the best, or at least
    ``floor`` when given (None if none qualifies)."""
    floor = max((rho(x) for x in items), default=math.nan) - RHO_TIE if floor is None else floor
    return max((x for x in items if rho(x) >= floor), key=shift, default=None)


def agreed_range(scores: dict, scale: float, max_distance: float = 1.0, floor: float | None = None) -> dict:
    """For a concept judged by two descriptors: of calibrate_ranges' valid intervals moving the descriptor up,
    the widest whose *lower* rho of the two is within RHO_TIE of the highest (or at least ``floor``)."""
    g, found = np.array(scores["grid"]), []
    for cand in ranges(scores, scale, max_distance):
        lo, hi = cand.pop("lo"), cand.pop("hi")
        agree = min([cand["rho"]] + [mean_rho(g, rows, lo, hi) for rows in scores["second_opinions"].values()])
        if cand["shift_units"] > 0 and math.isfinite(agree):
            found.append({**cand, "lower_rho": agree})
    pick = widest_near_best(found, lambda c: c["lower_rho"], lambda c: c["shift_units"], floor)
    return pick or {"alpha_min": None, "alpha_max": None,
                    "why": f"no interval of >= 3 grid points within {max_distance:g} x the prompt-swap "
                           "distance moves it up"}


def pick_range(scores: dict, scale: float, *, min_rho: float = 0.9, max_distance: float = 1.0,
               floor: float | None = None) -> dict:
    """The range rule: a concept judged by two descriptors (tempo, mood) gets the range both follow best
    (``agreed_range``), any other the widest with rho >= ``min_rho`` (``choose``)."""
    if scores.get("second_opinions"):
        return agreed_range(scores, scale, max_distance, floor)
    return choose(scores, scale, min_rho=min_rho, max_distance=max_distance)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", type=Path, default=Path("presets/demo.toml"))
    ap.add_argument("--source", help="model source overriding the preset's")
    ap.add_argument("--out", type=Path, default=Path("out/ranges"))
    ap.add_argument("--grid", default="-3,-2.5,-2,-1.5,-1,-0.5,0,0.5,1,1.5,2,2.5,3", help="alphas to try")
    ap.add_argument("--prompts", nargs="+", default=list(EXTRACT_BASES),
                    help="neutral prompts (default: the extraction bases; the acceptance benchmark holds its own out)")
    ap.add_argument("--bpm-grid", default="60,70,80,90,100,110,120,130,140,150,160,170,180",
                    help="BPMs to try for a tempo knob (target = \"bpm\"), around its default")
    ap.add_argument("--knob", action="append", default=[], help="knob to calibrate (repeatable; default all)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    args.prompts = tuple(args.prompts)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    grid = sorted({float(a) for a in args.grid.split(",")} | {0.0})
    preset, runner = acc.open_runner(args)
    args.seed = preset.scene.seed if args.seed is None else args.seed
    report = {"preset": str(args.preset), "model": runner.model.source, "fingerprint": runner.model.fingerprint,
              "seed": args.seed, "knobs": {}}
    bpm_grid = [float(b) for b in args.bpm_grid.split(",")]
    for knob in preset.knobs:
        concept = acc.CONCEPTS.get(knob.name)
        if concept is None or (args.knob and knob.name not in args.knob):
            continue
        knob_grid = sorted(set(bpm_grid) | {knob.default_alpha}) if knob.is_tempo else grid
        scores = grid_scores(runner, preset, knob, concept, knob_grid, args)
        pick = pick_range(scores, concept.scale)
        if knob.is_tempo and pick.get("alpha_min") is not None:
            pick["default"] = (knob.default_alpha - pick["alpha_min"]) / (pick["alpha_max"] - pick["alpha_min"])
        report["knobs"][knob.name] = {**scores, "recommended": pick}
        at = f", default = {pick['default']:.6f}" if "default" in pick else ""
        print(f"{knob.name}: recommended alpha range {pick.get('alpha_min')} .. {pick.get('alpha_max')}{at} "
              f"(rho {pick.get('rho', math.nan):.2f}, lower of two {pick.get('lower_rho', math.nan):.2f}, "
              f"shift {pick.get('shift_units', math.nan):.2f} x "
              f"{concept.scale} {concept.descriptor}) {pick.get('why', '')}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ranges.json").write_text(json.dumps(acc.clean(report), indent=1))
    print(f"wrote {args.out / 'ranges.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
