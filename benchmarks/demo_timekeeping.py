"""Does the demo model keep time? Beat periodicity of its renders vs corpus clips of the same attributes.

    .venv/bin/python benchmarks/demo_timekeeping.py [--clips 24] [--teacher NAME=FOLDER[@STEPS][,nobeat] ...]
                                                    [--corpus-clips N]

A beat tracker (librosa's tempo estimate) hears a tempo when the onsets repeat
at one period. For held-out captions (every attribute named; the same renders
and corpus clips as the acceptance's tonal-clarity part), per clip:

- ``periodicity``: the highest peak of the onset-strength autocorrelation
  (normalised, mean removed) between 40 and 240 BPM: 1 for a perfectly
  periodic beat, near 0 for onsets at random times;
- ``ioi_cv``: the coefficient of variation of the inter-onset intervals;
- ``class_hit``: librosa's tempo falls in the caption's tempo class
  (slow 65-85, medium 100-120, fast 140-170 BPM, +-8 %).

for the shipped model at its preset settings, the corpus clips after the
codec round trip, and optionally undistilled teachers (CFG 5, 8 steps or ``@STEPS``). A
beat-conditioned model (``train --beat``) is given each corpus clip's BPM and beat
phase, unless its spec ends ``,nobeat``; for it, ``exact_bpm`` is how often
librosa's tempo is within 8 % of the BPM it was given, and ``--bpm-sweep`` also
judges its tempo input as the acceptance judges a knob (benchmarks/_bpm_sweep.py).
With ``--corpus-clips N`` it also asks how often librosa's tempo is the
clip's true BPM (within 8 %) on N corpus clips per tempo class and density,
with straight and with swung slow off-beats (``CorpusOptions.slow_swing``).
Prints tables and writes ``timekeeping.json``. Needs FluidSynth and librosa.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bpm_sweep import bpm_sweep  # noqa: E402
from _tonal import held_out_renders  # noqa: E402

_HOP = 512


def beat_measures(audio: np.ndarray, sr: int, tempo_class: str) -> dict[str, float]:
    import librosa

    from steerbridge.engine.demo.score import TEMPO_BPM_V2

    env = librosa.onset.onset_strength(y=audio, sr=sr, hop_length=_HOP)
    ac = librosa.autocorrelate(env - env.mean())
    ac = ac / ac[0] if ac[0] > 0 else ac
    lags = np.arange(int(60 * sr / _HOP / 240), min(len(ac), int(60 * sr / _HOP / 40) + 1))  # short clips: fewer
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=_HOP, units="time")
    ioi = np.diff(onsets)
    tempo = float(librosa.feature.tempo(onset_envelope=env, sr=sr, hop_length=_HOP)[0])
    lo, hi = TEMPO_BPM_V2[tempo_class]
    return {"periodicity": float(ac[lags].max()), "ioi_cv": float(ioi.std() / ioi.mean()) if len(ioi) > 1 else 0.0,
            "librosa_tempo": tempo, "class_hit": float(lo / 1.08 <= tempo <= hi * 1.08)}


def exact_bpm(rows: list[dict[str, float]], bpms: list[float]) -> float:
    """How often librosa's tempo is within 8 % of ``bpms`` (the clips' true, or the asked, BPM)."""
    return float(np.mean([abs(r["librosa_tempo"] / b - 1) < 0.08 for r, b in zip(rows, bpms)]))


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in ("periodicity", "ioi_cv", "class_hit")}


def corpus_tempo(clips: int, sr: int) -> dict[str, dict[str, float]]:
    """Per corpus setting (straight, swung), librosa's exact-BPM rate per tempo class and per slow density."""
    from steerbridge.engine.demo.corpus import CorpusOptions, make_clips
    from steerbridge.engine.evaluation.rhythm import librosa_tempo

    out = {}
    for name, swing in (("straight", False), ("swung", True)):
        batch = make_clips(list(range(9_100_000, 9_100_000 + clips)),  # seeds outside every training corpus
                           options=CorpusOptions(synth="fluidsynth", sample_rate=sr, include_held_out=True,
                                                 slow_swing=swing))
        exact = [(c.attrs, abs(librosa_tempo(c.audio, sr) / c.bpm - 1) < 0.08) for c in batch]
        groups = {t: [ok for a, ok in exact if a.tempo == t] for t in ("slow", "medium", "fast")}
        groups |= {f"slow {d}": [ok for a, ok in exact if a.tempo == "slow" and a.density == d]
                   for d in ("sparse", "busy")}
        out[name] = {k: float(np.mean(v)) for k, v in groups.items() if v}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo", help="the model folder (default: the shipped demo model)")
    ap.add_argument("--teacher", action="append", default=[], metavar="NAME=FOLDER[@STEPS][,nobeat]",
                    help="also measure this undistilled model (CFG 5, 8 steps or @STEPS; a beat-conditioned one "
                         "without its beat input: ,nobeat); repeatable")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--slow-swing", action="store_true", help="the corpus clips shuffle slow off-beats "
                    "(as a model trained with train --slow-swing)")
    ap.add_argument("--corpus-clips", type=int, default=0, help="also measure librosa on this many corpus clips")
    ap.add_argument("--bpm-sweep", action="store_true",
                    help="a beat-conditioned model: also render the held-out neutral prompts at 7 BPMs (70-160)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("out/timekeeping"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from steerbridge.engine.adapters.sat_source import DEMO_DIR
    from steerbridge.engine.demo.fluid import FluidSynthMissing, find_fluidsynth
    from steerbridge.engine.demo.model import load_model_folder

    try:
        find_fluidsynth()  # the corpus clips
        import librosa  # noqa: F401  the beat measures
    except (FluidSynthMissing, ImportError) as exc:
        sys.exit(f"demo_timekeeping needs FluidSynth and librosa (pip install -e '.[eval]'): {exc}")

    folder = DEMO_DIR if args.model == "demo" else Path(args.model)
    config = json.loads((folder / "model_config.json").read_text()).get("steerbridge", {})
    models = {"model": (load_model_folder(folder).eval(), config.get("steps", 8), config.get("cfg_scale", 5.0), True)}
    for spec in args.teacher:
        name, _, path = spec.partition("=")
        path, _, flag = path.partition(",")
        path, _, steps = path.partition("@")
        if not path or not (steps or "8").isdigit() or flag not in ("", "nobeat"):
            ap.error(f"--teacher {spec}: give NAME=FOLDER, NAME=FOLDER@STEPS, optionally followed by ,nobeat")
        models[name] = (load_model_folder(Path(path)).eval(), int(steps or 8), 5.0, flag != "nobeat")
    report: dict[str, dict] = {}
    bpms: list[float] = []  # the corpus clips', which a beat-conditioned model is given
    for name, (model, steps, cfg, use_beat) in models.items():
        beat = use_beat and "beat" in model.conditioner.conditioners
        _, attrs, renders, round_trip, corpus = held_out_renders(  # the corpus side once, with the first model
            model, clips=args.clips, steps=steps, cfg_scale=cfg, slow_swing=args.slow_swing, corpus=not report,
            beat=beat)
        sr = model.sample_rate
        bpms = bpms or [c.bpm for c in corpus]
        rows = [beat_measures(x, sr, a.tempo) for x, a in zip(renders, attrs)]
        report[name] = {"steps": steps, "cfg_scale": cfg, "beat": beat, **summarise(rows),
                        **({"exact_bpm": exact_bpm(rows, bpms)} if beat else {}), "clips": rows}
        if beat and args.bpm_sweep:
            from steerbridge.engine.evaluation.concepts import HELD_OUT_BASES

            sweep = report[name]["bpm_sweep"] = bpm_sweep(model, prompts=HELD_OUT_BASES, seed=4321, steps=steps,
                                                          cfg_scale=cfg)
            print(f"{name}: tempo input 70-160 BPM on {len(HELD_OUT_BASES)} neutral prompts: rho librosa "
                  f"{sweep['rho_librosa']:.2f}, onset rate {sweep['rho_onset']:.2f}; shift "
                  f"{sweep['shift_librosa']:+.0%} / {sweep['shift_onset']:+.0%}; librosa at the asked BPM "
                  f"{sweep['exact_bpm']:.0%}")
        if "corpus" not in report:
            rows = [beat_measures(x, sr, a.tempo) for x, a in zip(round_trip, attrs)]
            report["corpus"] = {**summarise(rows), "exact_bpm": exact_bpm(rows, bpms), "clips": rows}
    w = max(map(len, report))
    print(f"{'':{w}s} {'periodicity':>11s} {'IOI CV':>7s} {'tempo class hit':>15s} {'exact BPM':>9s}")
    for name, r in report.items():
        if "periodicity" in r:
            exact = f"{r['exact_bpm']:9.0%}" if "exact_bpm" in r else f"{'':9s}"
            print(f"{name:{w}s} {r['periodicity']:11.2f} {r['ioi_cv']:7.2f} {r['class_hit']:15.0%} {exact}")
    if args.corpus_clips:
        report["corpus_tempo"] = corpus_tempo(args.corpus_clips, sr)
        print(f"librosa tempo within 8 % of the clip's BPM ({args.corpus_clips} corpus clips):")
        for name, rates in report["corpus_tempo"].items():
            print(f"  {name:9s} " + "  ".join(f"{k} {v:.0%}" for k, v in rates.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "timekeeping.json").write_text(json.dumps({"clips": args.clips, "slow_swing": args.slow_swing,
                                                           **report}, indent=1))
    print(f"wrote {args.out / 'timekeeping.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
