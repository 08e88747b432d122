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
  grid points inside it).

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
            "distance_over_swap": [[d / sw["cutoff"] for d in row] for row in sw["dists"]],
            "prompt_swap_distance": sw["cutoff"]}


def mean_rho(grid: np.ndarray, rows: tp.Sequence, lo: int, hi: int) -> float:
    """Mean per-prompt Spearman rho of ``rows`` against the grid over points lo..hi (nan if none is defined)."""
    rhos = [acc.spearman(grid[lo:hi + 1], np.asarray(r)[lo:hi + 1]) for r in rows]
    return float(np.nanmean(rhos)) if any(math.isfinite(r) for r in rhos) else math.nan


def ranges(scores: dict, scale: float, max_distance: float = 1.0) -> tp.Iterator[dict]:
    """Every interval of >= 3 grid points around alpha 0 whose renders all stay within ``max_distance``
    times the prompt-swap distance, with its grid indices, mean rho and shift (in concept scale units)."""
    grid = np.array(scores["grid"])
    vals, ratios = np.array(scores["descriptors"]), np.array(scores["distance_over_swap"])
    zero = int(np.argmin(np.abs(grid)))
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", type=Path, default=Path("presets/demo.toml"))
    ap.add_argument("--source", help="model source overriding the preset's")
    ap.add_argument("--out", type=Path, default=Path("out/ranges"))
    ap.add_argument("--grid", default="-3,-2.5,-2,-1.5,-1,-0.5,0,0.5,1,1.5,2,2.5,3", help="alphas to try")
    ap.add_argument("--prompts", nargs="+", default=list(EXTRACT_BASES),
                    help="neutral prompts (default: the extraction bases; the acceptance benchmark holds its own out)")
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
    for knob in preset.knobs:
        concept = acc.CONCEPTS.get(knob.name)
        if concept is None or (args.knob and knob.name not in args.knob):
            continue
        scores = grid_scores(runner, preset, knob, concept, grid, args)
        pick = choose(scores, concept.scale)
        report["knobs"][knob.name] = {**scores, "recommended": pick}
        print(f"{knob.name}: recommended alpha range {pick.get('alpha_min')} .. {pick.get('alpha_max')} "
              f"(rho {pick.get('rho', math.nan):.2f}, shift {pick.get('shift_units', math.nan):.2f} x "
              f"{concept.scale} {concept.descriptor}) {pick.get('why', '')}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ranges.json").write_text(json.dumps(acc.clean(report), indent=1))
    print(f"wrote {args.out / 'ranges.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
