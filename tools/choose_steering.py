"""Choose, per concept, how to steer it -- site, layers, per-step, One-to-All, norm-relative -- by measuring each.

    .venv/bin/python tools/choose_steering.py [--concept mood --concept tempo] [--report docs/demo-model]

Localisation (tools/make_vectors.py) says where a concept's *prompt* acts;
that is not always where *adding its vector* moves the music most smoothly.
For each concept this extracts CAA vectors for a few candidates around the
layers in ``layers.json`` (the chosen window; the same window recorded per
diffusion step; that per-step vector on the first half of the steps only, or
on the first K of them for each K in ``--first-steps``; the window's
neighbours; every layer; One-to-All: one window layer's direction added at
every layer, for each layer of the window; the window and its early-step
vectors norm-relative: each layer's direction as long as that layer's
activations, the engine's ``alpha_units = "norm"`` baked into the file; the
block output instead of the cross-attention output, whole and on those first
steps), sweeps each over an alpha grid on the
calibration prompts (``--prompts``) and seed exactly as
tools/calibrate_ranges.py does, and keeps the
candidate whose best range (every render within ``--max-distance``, 0.8, times
the prompt-swap distance: a margin, because unseen prompts go further than the
four calibration ones; Spearman rho at least the concept's target: 0.9, or 0.8
for instrument, drums and density, as in benchmarks/_targets.py) moves the
concept's descriptor furthest. A concept judged by two descriptors (tempo:
onset rate and librosa's estimate; mood: the mode score and basic-pitch's
major/minor) must satisfy both, so for it the range and the candidate are
the widest of those whose lower rho of the two is highest (within 0.05: four
prompts' mean rho moves that much by chance).
``--site cross_attn`` keeps a concept on the site of the vectors its knob is
orthogonalised against (the engine refuses to mix sites); ``--reuse-report``
judges the sweeps of an earlier report again (after a rule changed) and
extracts only the winners.

The winner's file replaces ``<vectors>/<concept>.safetensors`` (written
atomically) and its record in ``layers.json`` says what was chosen and why;
the report (``steering_choice.json``) holds every candidate's grid. Prompts
and seed are the calibration ones: the acceptance benchmark's held-out
prompts and seed judge the result. Copy the printed ranges into the preset.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
import typing as tp
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tools"))
import calibrate_ranges as cal  # noqa: E402  (the range rule and the sweep it runs)
from calibrate_ranges import RHO_TIE, agreed_range, widest_near_best  # noqa: E402,F401  (the two-descriptor rule)
import demo_acceptance as acc  # noqa: E402
from _targets import STEER, STEER_TARGETS  # noqa: E402

from steerbridge.bridge.util.atomic import atomic_write_text  # noqa: E402
from steerbridge.engine.evaluation.concepts import EXTRACT_BASES, HELD_OUT_BASES  # noqa: E402


def candidates(chosen: list[int], n_layers: int, steps: int = 1, first_steps: tp.Sequence[int] = ()) -> list[dict]:
    """The candidates tried around the chosen window (deduplicated, in this order). With ``steps`` >= 2
    diffusion steps, per-step candidates steer only the first ``first_steps`` of them (default: the first
    half): a render's rhythm and harmony are laid down in its first steps, its timbre after."""
    width = len(chosen)
    early = sorted({k for k in (first_steps or [steps // 2]) if 0 < k < steps}) if steps >= 2 else []
    out = [{"site": "cross_attn", "layers": chosen, "per_step": False},
           {"site": "cross_attn", "layers": chosen, "per_step": True}]
    out += [{"site": "cross_attn", "layers": chosen, "per_step": True, "first_steps": k} for k in early]
    for shift in (-1, 1):
        moved = [layer + shift for layer in chosen]
        if min(moved) >= 0 and max(moved) < n_layers:
            out.append({"site": "cross_attn", "layers": moved, "per_step": False})
    if width < n_layers:
        out.append({"site": "cross_attn", "layers": list(range(n_layers)), "per_step": False})
    # One-to-All (the MusicGen steering paper's choice): one layer's direction added at every layer
    out += [{"site": "cross_attn", "layers": list(range(n_layers)), "per_step": False, "one_to_all": layer}
            for layer in chosen]
    # norm-relative: each layer's direction as long as that layer's activations (the engine's alpha_units = "norm")
    out += [{"site": "cross_attn", "layers": chosen, "per_step": k is not None, "first_steps": k,
             "norm_relative": True} for k in [None, *early]]
    out.append({"site": "block", "layers": chosen, "per_step": False})
    out += [{"site": "block", "layers": chosen, "per_step": True, "first_steps": k} for k in early]
    seen, unique = set(), []
    for c in out:
        c = {k: v for k, v in c.items() if v is not None}
        key = (c["site"], tuple(c["layers"]), c["per_step"], c.get("first_steps"), c.get("one_to_all"),
               c.get("norm_relative"))
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return unique


def label(c: dict) -> str:
    if c.get("one_to_all") is not None:
        return f"{c['site']}@{c['one_to_all']} to every layer"
    first = f" first {c['first_steps']} steps" if c.get("first_steps") else ""
    norm = " norm-relative" if c.get("norm_relative") else ""
    return f"{c['site']}@{','.join(map(str, c['layers']))}{' per-step' if c['per_step'] else ''}{first}{norm}"


def early_only(vector, first_steps: int | None):
    """A per-step vector that steers only its first ``first_steps`` diffusion steps (later rows zero)."""
    if not first_steps:
        return vector
    import torch

    tensors = {l: torch.cat([t[:first_steps], torch.zeros_like(t[first_steps:])]) for l, t in vector.tensors.items()}
    return vector.with_tensors(tensors, extra={**vector.meta.extra, "first_steps": first_steps})


def norm_relative(vector):
    """Each layer's direction (each step's row) scaled to that layer's activation norm, then all of it by one
    constant so its mean length stays the CAA vector's: the engine's ``alpha_units = "norm"`` baked into the file,
    so one knob can have it while the preset's others stay in absolute units. Zero rows (``early_only``) stay
    zero; ``norm_scale`` in the meta is the norm-units alpha of alpha 1 here."""
    import torch

    if missing := [l for l in vector.tensors if l not in vector.meta.site_norms]:
        raise ValueError(f"'{vector.concept}' records no activation norm at layers {missing}: extract it again")
    lengths = {l: t.norm(dim=-1, keepdim=True) for l, t in vector.tensors.items()}
    unit = {l: t * (vector.meta.site_norms[l] / lengths[l].clamp_min(1e-12)) for l, t in vector.tensors.items()}
    live = [(float(n), vector.meta.site_norms[l]) for l, ns in lengths.items() for n in ns.flatten() if n > 0]
    if not live:
        raise ValueError(f"'{vector.concept}' is zero everywhere: there is no direction to scale")
    scale = sum(n for n, _ in live) / sum(s for _, s in live)
    return vector.with_tensors({l: (u * scale).to(torch.float32) for l, u in unit.items()},
                               extra={**vector.meta.extra, "norm_relative": True, "norm_scale": scale})


SWEEP_KEYS = ("grid", "descriptors", "second_opinions", "distance_over_swap")  # what a candidate's sweep measured


def judge(scores: dict, concept, max_distance: float = 1.0, floor: float | None = None) -> dict:
    """The range rule (calibrate_ranges' at the concept's target rho; with a second opinion, the range both
    descriptors follow best), plus the second opinions' rho inside the range."""
    pick = cal.pick_range(scores, concept.scale, min_rho=STEER_TARGETS.get(concept.name, STEER)["rho"],
                          max_distance=max_distance, floor=floor)
    second = {}
    if pick.get("alpha_min") is not None:
        g = np.array(scores["grid"])
        lo, hi = int(np.flatnonzero(g == pick["alpha_min"])[0]), int(np.flatnonzero(g == pick["alpha_max"])[0])
        second = {name: cal.mean_rho(g, rows, lo, hi) for name, rows in scores["second_opinions"].items()}
    return {**scores, "recommended": pick, "second_rho": second}


def best(results: list[dict], concept=None, max_distance: float = 1.0) -> dict | None:
    """The candidate whose valid range moves the descriptor furthest. For a concept with a second opinion
    (``concept`` given), every candidate's range is first chosen again against one floor, RHO_TIE below the
    best lower rho of any: so a candidate is not passed over for a range it narrowed to gain noise-sized rho."""
    valid, floor = [r for r in results if r["recommended"].get("alpha_min") is not None], None
    if concept is not None and any("lower_rho" in r["recommended"] for r in valid):
        floor = max(r["recommended"]["lower_rho"] for r in valid) - RHO_TIE
        for r in valid:
            r.update(judge({k: r[k] for k in SWEEP_KEYS}, concept, max_distance, floor))
        valid = [r for r in valid if r["recommended"].get("alpha_min") is not None]
    return widest_near_best(valid, lambda r: r["recommended"].get("lower_rho", 0.0),
                            lambda r: r["recommended"]["shift_units"], floor)


def preset_text(source: str, model, vector: Path, name: str, bpm: float | None = None, cand: dict | None = None) -> str:
    o, cand = model.adapter.options, cand or {}
    spread = (f'layers = {list(cand["layers"])}\none_to_all = {cand["one_to_all"]}\n'
              if cand.get("one_to_all") is not None else "")
    return (f'[model]\nsource = "{source}"\nsteps = {o.get("steps", 8)}\ncfg_scale = {o.get("cfg_scale", 6.0)}\n'
            f'[scene]\nprompt = "{EXTRACT_BASES[0]}"\nseed = 0\n' + (f'bpm = {bpm}\n' if bpm else '') +
            f'[[knob]]\nname = "{name}"\nvector = "{vector}"\nalpha_min = -1.0\nalpha_max = 1.0\n{spread}')


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="demo", help="model source: demo or a model folder")
    ap.add_argument("--vectors", type=Path, default=ROOT / "presets" / "vectors" / "demo",
                    help="folder with layers.json (tools/make_vectors.py's); winners are written here")
    ap.add_argument("--concept", action="append", default=[], help="concept (repeatable; default: all in layers.json)")
    ap.add_argument("--grid", default="-8,-6,-4,-3,-2,-1,-0.5,0,0.5,1,1.5,2,3,4,6,8", help="alphas to try")
    ap.add_argument("--prompts", nargs="+", default=list(EXTRACT_BASES),
                    help="calibration prompts the sweeps render (default: the four extraction bases; more prompts "
                         "make a range's rho less a matter of chance; never the acceptance's held-out ones)")
    ap.add_argument("--first-steps", default="", metavar="K,K",
                    help="per-step candidates that steer only the first K diffusion steps (default: half of them)")
    ap.add_argument("--seed", type=int, default=1234, help="the calibration seed (the demo preset's scene seed)")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--max-distance", type=float, default=0.8, metavar="X",
                    help="a range's renders stay within X times the prompt-swap distance on the calibration prompts "
                         "(default 0.8: other prompts go further than these four; 1.0 is the acceptance's own line)")
    ap.add_argument("--report", type=Path, help="folder for steering_choice.json (default: --vectors)")
    ap.add_argument("--site", help="try only candidates on this site (e.g. cross_attn, to match the vectors a knob is "
                                   "orthogonalised against)")
    ap.add_argument("--reuse-report", type=Path, metavar="JSON",
                    help="an earlier steering_choice.json: judge its sweeps again instead of rendering them")
    ap.add_argument("--bpm", type=float, help="record the vectors and render the sweeps at this tempo (a model "
                                              "with a beat input: the preset's tempo knob default, as the bridge "
                                              "renders knob moves)")
    ap.add_argument("--extract-without-beat", action="store_true",
                    help="with --bpm, record the vectors without a beat all the same (as this tool did before)")
    ap.add_argument("--dry-run", action="store_true", help="measure and report; leave the vector files alone")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if set(args.prompts) & set(HELD_OUT_BASES):
        ap.error(f"--prompts: {sorted(set(args.prompts) & set(HELD_OUT_BASES))} are the acceptance's held-out prompts")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from steerbridge import engine
    from steerbridge.engine.evaluation.concepts import get_concept
    from steerbridge.engine.runtime.errors import EngineError

    record_path = args.vectors / "layers.json"
    if not record_path.is_file():
        ap.error(f"{record_path}: no layers.json there; run tools/make_vectors.py first")
    record = json.loads(record_path.read_text())
    model = engine.load_model(args.source)
    if record.get("fingerprint") != model.fingerprint:
        ap.error(f"{record_path} was made for model {record.get('fingerprint')}, not {model.fingerprint}: "
                 "run tools/make_vectors.py again")
    o = model.adapter.options
    steps, cfg_scale = o.get("steps", 8), o.get("cfg_scale", 6.0)
    grid = sorted({float(a) for a in args.grid.split(",")} | {0.0})
    source = args.source if args.source in ("demo", "tiny") else str(Path(args.source).resolve())
    report = {"model": model.source, "fingerprint": model.fingerprint, "seed": args.seed, "grid": grid,
              "max_distance": args.max_distance, "bpm": args.bpm,
              "prompts": list(args.prompts), "rule": __doc__.split("\n\n")[1], "concepts": {}}
    first_steps = [int(k) for k in args.first_steps.split(",") if k.strip()]
    sweep_args = argparse.Namespace(prompts=tuple(args.prompts), seed=args.seed, seconds=args.seconds, source=None)
    earlier = {}
    if args.reuse_report:
        old = json.loads(args.reuse_report.read_text())
        if old.get("fingerprint") != model.fingerprint:
            ap.error(f"--reuse-report {args.reuse_report}: measured on model {old.get('fingerprint')}, "
                     f"not {model.fingerprint}")
        earlier = {(n, c["label"]): c for n, r in old["concepts"].items() for c in r["candidates"] if "grid" in c}
    out = args.report or args.vectors
    out.mkdir(parents=True, exist_ok=True)
    earlier_report = out / "steering_choice.json"
    if earlier_report.is_file():  # concepts chosen by an earlier run on this model stay in the report
        old = json.loads(earlier_report.read_text())
        if old.get("fingerprint") == model.fingerprint:
            report["concepts"].update(old.get("concepts", {}))

    def save() -> None:
        atomic_write_text(earlier_report, json.dumps(acc.clean(report), indent=1, default=str))
        if not args.dry_run:
            atomic_write_text(record_path, json.dumps(record, indent=1, default=float))

    with tempfile.TemporaryDirectory(prefix="steerbridge-choose-") as tmp:
        for name in args.concept or list(record["concepts"]):
            concept, made = get_concept(name), record["concepts"][name]
            pos, neg = concept.prompts()

            def extract(cand: dict, layers: list[int] | None, path: Path) -> Path:
                if layers is not None and cand.get("one_to_all") is not None:
                    layers = [cand["one_to_all"]]  # the one direction; the knob spreads it to its layers
                vector = early_only(engine.extract_caa(
                    model, positive=pos, negative=neg, concept=name, site=cand["site"], layers=layers,
                    seconds=args.seconds, steps=steps, cfg_scale=cfg_scale, per_step=cand["per_step"],
                    bpm=None if args.extract_without_beat else args.bpm), cand.get("first_steps"))
                engine.save_vector(norm_relative(vector) if cand.get("norm_relative") else vector, path)
                return path

            results = []
            localised = made.setdefault("localised_layers", list(made["layers"]))  # make_vectors' choice
            for cand in candidates(list(localised), model.num_layers, steps, first_steps):
                if args.site and cand["site"] != args.site:  # not rendered: it could not be chosen
                    results.append({**cand, "label": label(cand), "excluded": f"--site {args.site}"})
                    continue
                t0 = time.perf_counter()
                path = Path(tmp) / f"{name}-{len(results)}.safetensors"
                if (name, label(cand)) in earlier:
                    scores = {k: earlier[name, label(cand)][k] for k in SWEEP_KEYS}
                    path = None  # extracted only if it wins
                else:
                    preset_path = Path(tmp) / f"{name}-{len(results)}.toml"
                    preset_path.write_text(preset_text(source, model, extract(cand, cand["layers"], path), name,
                                                         args.bpm, cand))
                    sweep_args.preset = preset_path
                    preset, runner = acc.open_runner(sweep_args)
                    try:
                        scores = cal.grid_scores(runner, preset, preset.knobs[0], concept, grid, sweep_args)
                    except (RuntimeError, EngineError) as exc:  # NaN audio at a large alpha, or One-to-All across
                        # layers of other widths (a U-Net): this candidate is out
                        print(f"{name} {label(cand)}: excluded, a render failed ({exc})", flush=True)
                        results.append({**cand, "label": label(cand), "excluded": f"a render failed: {exc}"})
                        continue
                res = {**cand, "label": label(cand), "file": path, **judge(scores, concept, args.max_distance),
                       "seconds_taken": time.perf_counter() - t0}
                results.append(res)
                pick = res["recommended"]
                print(f"{name} {res['label']}: range {pick.get('alpha_min')} .. {pick.get('alpha_max')} "
                      f"rho {pick.get('rho', math.nan):.2f} shift {pick.get('shift_units', math.nan):.2f} "
                      f"second {json.dumps({k: round(v, 2) for k, v in res['second_rho'].items()})} "
                      f"({res['seconds_taken']:.0f} s)", flush=True)
            win = best([r for r in results if "excluded" not in r], concept, args.max_distance)
            report["concepts"][name] = {"candidates": [{k: v for k, v in r.items() if k != "file"} for r in results],
                                        "chosen": win["label"] if win else None,
                                        "prompts": list(concept.bases(args.prompts)), "grid": grid,
                                        "command": shlex.join(["tools/choose_steering.py", *(argv or sys.argv[1:])])}
            if win is None:
                print(f"{name}: no candidate has a valid range; its file is left as it is", flush=True)
                save()
                continue
            print(f"{name}: chose {win['label']}, alpha {win['recommended']['alpha_min']} .. "
                  f"{win['recommended']['alpha_max']}", flush=True)
            if win.get("one_to_all") is not None:
                print(f"{name}: the preset's knob needs layers = {win['layers']}, one_to_all = {win['one_to_all']}")
            if not args.dry_run:
                file_layers = win["layers"] if win.get("one_to_all") is None else [win["one_to_all"]]
                if len(made.get("file_layers", ())) == model.num_layers:  # made with --every-layer: keep it so
                    win["file"] = extract(win, None, Path(tmp) / f"{name}-every.safetensors")
                    file_layers = list(range(model.num_layers))
                    print(f"{name}: file at every layer; the preset's knob needs layers = {win['layers']}")
                elif win["file"] is None:
                    win["file"] = extract(win, win["layers"], Path(tmp) / f"{name}-win.safetensors")
                target = args.vectors / made["file"]
                shutil.copyfile(win["file"], target.with_suffix(".tmp"))
                os.replace(target.with_suffix(".tmp"), target)
                made.update(layers=win["layers"], file_layers=file_layers, site=win["site"],
                            per_step=win["per_step"], first_steps=win.get("first_steps"),
                            one_to_all=win.get("one_to_all"), norm_relative=win.get("norm_relative", False),
                            chosen_by="tools/choose_steering.py", recommended_range=win["recommended"],
                            extracted_at_bpm=None if args.extract_without_beat else args.bpm)
            save()  # after every concept: a later concept's failure loses nothing chosen so far
    print(f"wrote {out / 'steering_choice.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
