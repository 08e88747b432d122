"""`steerbridge render`: one WAV, or a sweep of alphas with a spectrogram grid picture."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from steerbridge.bridge.cli.common import add_model_flags
from steerbridge.engine.vocab import ALPHA_UNITS, BACKENDS, CFG_MODES, DEFAULT_SECONDS, DEFAULT_STEPS

__all__ = ["register", "parse_sweep"]

EPILOG = """examples:
  steerbridge render --model tiny --prompt "warm pad" --steer mood.safetensors=2.0 --out out/
  steerbridge render --model tiny --steer mood.safetensors=0 --sweep mood=-4:4:7 --out out/
  steerbridge render --preset demo --knob brightness=0.8 --json
  steerbridge render --preset presets/demo.toml --sweep tempo=0:1:5 --out out/tempo

With --preset, knob values are normalised 0..1 and go through the knob's alpha range and
curve; without one, --sweep NAME refers to a --steer vector (its file name without
.safetensors) and LO:HI are alphas."""


def parse_sweep(text: str) -> tuple[str, float, float, int]:
    from steerbridge.bridge.cli.common import parse_pair

    name, spec = parse_pair(text, what="--sweep")
    parts = spec.split(":")
    if len(parts) != 3:
        raise ValueError(f"--sweep {text!r} must be NAME=LO:HI:N, e.g. mood=-4:4:7")
    lo, hi, n = float(parts[0]), float(parts[1]), int(parts[2])
    if n < 2 or n > 64:
        raise ValueError(f"--sweep {text!r}: N must be 2..64")
    return name, lo, hi, n


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render one steered loop to WAV, or a sweep with a spectrogram grid",
                       description="Render a loop offline, with steering. Writes WAV files (and a PNG for sweeps).",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", help="preset TOML (model, scene and knobs), or a shipped preset's name (demo, tiny)")
    add_model_flags(p, default=None, default_text="the preset's, else tiny")
    p.add_argument("--prompt", help="text prompt (default: the preset's scene)")
    p.add_argument("--negative-prompt")
    p.add_argument("--seed", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--steps", type=int)
    p.add_argument("--cfg-scale", type=float)
    p.add_argument("--sampler", help="sampler name (default: the model family's)")
    p.add_argument("--decoder", choices=("griffin-lim", "hifigan"),
                   help="demo model only: griffin-lim (default, fast) or hifigan (cleaner, ~7x slower)")
    p.add_argument("--bpm", type=float,
                   help="tempo for a model with a beat input (a demo model trained with --beat): it plays at this "
                        "BPM, a beat on the loop's start; other models ignore it")
    p.add_argument("--backend", choices=BACKENDS,
                   help="denoiser backend (default: the preset's, else torch); onnx needs `steerbridge export-onnx`")
    p.add_argument("--steer", action="append", default=[], metavar="FILE=ALPHA",
                   help="add a vector file with strength ALPHA (repeatable)")
    p.add_argument("--layers", help="comma-separated layers for every --steer vector (default: all it has)")
    p.add_argument("--cfg-mode", choices=CFG_MODES,
                   help="which CFG half is steered (default: the preset's, else the model family's: "
                        "cond_only, both for MusicGen)")
    p.add_argument("--start-step", type=int)
    p.add_argument("--alpha-units", choices=ALPHA_UNITS)
    p.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                   help="with --preset: set a knob's normalised value 0..1 (repeatable)")
    p.add_argument("--sweep", metavar="NAME=LO:HI:N", help="render N values from LO to HI, same seed")
    p.add_argument("--engine", metavar="tcp://HOST:PORT",
                   help="render on a `steerbridge engine-server` (its model; --model is ignored) instead of here")
    p.add_argument("--engine-token", metavar="FILE",
                   help="that server's token file (default: ~/.config/steerbridge/engine.token)")
    p.add_argument("--out", type=Path, default=Path("out/render"), help="output folder (default: out/render)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from steerbridge.bridge.cli.common import add_json_flag

    add_json_flag(p)
    p.set_defaults(func=run)


def _plan(args: argparse.Namespace):
    """Base job + the list of (label, knob, value, alpha, job) to render."""
    from steerbridge.bridge.cli.common import parse_pair
    from steerbridge.bridge.engine_link.jobs import RenderJob, VectorTerm, render_job_for

    if args.preset is not None:
        from steerbridge.bridge.presets.model import load_preset
        from steerbridge.bridge.presets.shipped import resolve_preset

        preset = load_preset(resolve_preset(args.preset))
        alphas = {k.name: k.default_alpha for k in preset.knobs}
        for item in args.knob:
            name, value = parse_pair(item, what="--knob")
            alphas[name] = preset.knob(name).alpha_for(float(value))
        source = args.model or preset.model_source()
        family = args.family or (preset.model.family if args.model is None else None)  # the preset's, for its model
        base = render_job_for(preset, alphas, prompt=args.prompt, seed=args.seed, seconds=args.seconds,
                              negative_prompt=args.negative_prompt)
        if args.sweep:
            name, lo, hi, n = parse_sweep(args.sweep)
            knob = preset.knob(name)
            runs = []
            for i in range(n):
                value = lo + (hi - lo) * i / (n - 1)
                job = render_job_for(preset, {**alphas, name: knob.alpha_for(value)}, prompt=base.prompt,
                                     seed=base.seed, seconds=base.seconds, negative_prompt=base.negative_prompt)
                runs.append((f"{name}={value:.2f} (α {knob.alpha_for(value):+.2f})", name, value,
                             knob.alpha_for(value), job))
        else:
            runs = [("render", None, None, None, base)]
    else:
        if args.knob:
            raise ValueError("--knob needs --preset (without one, use --steer FILE=ALPHA)")
        source, family = args.model or "tiny", args.family
        layers = tuple(int(x) for x in args.layers.split(",")) if args.layers else None
        terms = []
        for item in args.steer:
            path, alpha = parse_pair(item, what="--steer")
            terms.append(VectorTerm(path=str(Path(path).resolve()), alpha=float(alpha), layers=layers))
        base = RenderJob(prompt=args.prompt or "ambient synth loop", seed=args.seed or 0,
                         seconds=args.seconds or DEFAULT_SECONDS, steps=DEFAULT_STEPS, terms=tuple(terms),
                         negative_prompt=args.negative_prompt)
        runs = [("render", None, None, None, base)]
        if args.sweep:
            name, lo, hi, n = parse_sweep(args.sweep)
            stems = [Path(t.path).name.removesuffix(".safetensors") for t in terms]
            if name not in stems:
                raise ValueError(f"--sweep {name}: no --steer vector named {name!r}; have {stems or 'none'}")
            runs = []
            for i in range(n):
                alpha = lo + (hi - lo) * i / (n - 1)
                sweep_terms = tuple(replace(t, alpha=alpha) if s == name else t for t, s in zip(terms, stems))
                runs.append((f"{name} α {alpha:+.2f}", name, alpha, alpha, replace(base, terms=sweep_terms)))
    overrides = {k: v for k, v in (("steps", args.steps), ("cfg_scale", args.cfg_scale), ("sampler", args.sampler),
                                   ("decoder", args.decoder), ("bpm", args.bpm),
                                   ("cfg_mode", args.cfg_mode), ("start_step", args.start_step),
                                   ("alpha_units", args.alpha_units)) if v is not None}
    runs = [(label, knob, value, alpha, replace(job, **overrides)) for label, knob, value, alpha, job in runs]
    backend = args.backend or (preset.model.backend if args.preset is not None else "torch")
    return source, backend, family, runs


def _remote(args: argparse.Namespace):
    """A started RemoteClient for --engine (its errors say how to fix the address or token)."""
    from steerbridge.bridge.engine_link.factory import make_client

    client = make_client(args.engine, source="", token_file=args.engine_token)
    try:
        client.start()
    except Exception:
        client.close()
        raise
    return client


def run(args: argparse.Namespace) -> int:
    from steerbridge.bridge.cli.common import ProgressBar, emit_json, fail

    try:
        source, backend, family, runs = _plan(args)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        return fail(str(exc).strip("'\""))
    from steerbridge.bridge.audio.wavfile import slug, write_wav
    from steerbridge.bridge.engine_link.client import EngineJobError
    from steerbridge.bridge.engine_link.jobs import JobFailed, Progress, RenderResult
    from steerbridge.bridge.engine_link.worker import JobRunner
    from steerbridge.engine import EngineError

    t0 = time.perf_counter()
    try:
        runner = _remote(args) if args.engine else JobRunner(source, backend=backend, family=family)
    except (EngineError, EngineJobError, ValueError, FileNotFoundError) as exc:
        return fail(str(exc))
    # The family's own guidance default (MusicGen steers both branches); a remote engine keeps its model
    # on the server, so there the job's (preset or shared) default stands.
    adapter = getattr(getattr(runner, "model", None), "adapter", None)
    family_mode = getattr(adapter, "default_cfg_mode", None)
    if family_mode is not None and args.cfg_mode is None and args.preset is None:  # e.g. MusicGen steers both
        runs = [(label, knob, value, alpha, replace(job, cfg_mode=family_mode))
                for label, knob, value, alpha, job in runs]
    total = sum(job.steps for *_, job in runs)
    bar = ProgressBar(total=total, desc="render", quiet=args.quiet or args.json)
    files, audios, done = [], [], 0
    try:
        for i, (label, knob, value, alpha, job) in enumerate(runs):
            events: list = []

            def on_event(ev, base=done) -> None:
                if isinstance(ev, Progress):
                    bar.update_to(base + ev.done)  # live, step by step
                else:
                    events.append(ev)

            runner.run(i, job, emit=on_event, cancelled=lambda: False)  # the same for a RemoteClient
            failed = [e for e in events if isinstance(e, JobFailed)]
            if failed:
                return fail(failed[0].error)
            result = next(e for e in events if isinstance(e, RenderResult))
            done += job.steps
            suffix = f"_{slug(knob)}{i:02d}" if knob else ""
            path = write_wav(args.out / f"{slug(job.prompt)}_s{job.seed}{suffix}.wav", result.audio,
                             result.sample_rate)
            files.append({"path": str(path), "knob": knob, "value": value, "alpha": alpha})
            audios.append((label, result.audio, result.sample_rate))
    finally:
        bar.close()
        if args.engine:
            runner.close()
    picture = None
    if len(runs) > 1:
        from steerbridge.bridge.reports.pictures import sweep_grid

        name = runs[0][1]
        picture = sweep_grid([(lbl, a) for lbl, a, _ in audios], audios[0][2], args.out / f"sweep_{slug(name)}.png",
                             title=f"{runs[0][4].prompt} — sweep of {name}")
    out = {"files": files, "sample_rate": audios[0][2], "render_s": round(time.perf_counter() - t0, 3),
           "model": runner.info.source, "fingerprint": runner.info.fingerprint}
    if picture is not None:
        out["picture"] = str(picture)
    if args.json:
        emit_json(out)
    else:
        for f in files:
            print(f["path"])
        if picture is not None:
            print(f"spectrogram grid: {picture}")
    return 0
