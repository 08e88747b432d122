"""Distil the demo model: 8 guided Euler steps into 4 unguided ones, one seeded, resumable command.

    python -m steerbridge.engine.demo.distill --teacher TRAIN_OUT/export --out OUT [--minutes N] [--resume]

Why: a render of the trained model is 8 Euler steps, each a DiT pass over two
rows (classifier-free guidance puts the conditional and the unconditional
prompt in one batch): 16 row passes, ~0.7 s of a 4 s loop's 0.83 s on a
2-core CPU. The student does the same job in 4 passes of one row.

How (on-policy trajectory distillation, guidance and steps at once): for a
batch of training captions (drawn as the corpus draws them; no audio is
needed) and seeded noise, the teacher runs upstream's rectified-flow Euler
sampler with CFG exactly as ``sample_rf`` does (t = sigmoid(-linspace(-6, 2,
steps + 1)), first 1, last 0). The 4-step schedule is every other point of
the 8-step one, so each student step has an exact target: the velocity that
lands where two guided teacher steps land. The student starts as a copy of
the teacher and is trained (AdamW, MSE, EMA) on those targets at the points
of the teacher's own trajectory, called without CFG. Every few minutes the
state is checkpointed atomically; every ``--eval-minutes`` the EMA student's
prompt-following at its own settings is logged and it is exported to
``OUT/export`` (the teacher's config, sampling defaults ``steps`` 4 and
``cfg_scale`` 1, verified by a strict load). The architecture and the
steering sites are unchanged: a distilled folder loads and steers through the
engine's normal path, its fingerprint differs, so vectors are made again. A
teacher with a beat input (``train --beat``) gets a beat with each
trajectory (``beat_value``), and ``--init-from`` can start the student from
an earlier student instead of the teacher, grown to the new input.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import time
import typing as tp
from pathlib import Path

import numpy as np
import torch

from steerbridge.engine.demo.captions import caption
from steerbridge.engine.demo.corpus import CorpusOptions, sample_attributes
from steerbridge.engine.demo.data import CONTRASTS, synthetic_class_gaps
from steerbridge.engine.demo.follow import beat_tracker, prompt_following
from steerbridge.engine.demo.model import export_model, latent_frames, load_model_folder, no_activation_checkpointing
from steerbridge.engine.demo.runlog import Cadence, RunLog, atomic_save, cosine_lr, optimise, rate_line
from steerbridge.engine.demo.score import TEMPO_BPM_V2

__all__ = ["DistillConfig", "beat_value", "corpus_gaps", "distill", "export_checkpoint", "main", "rf_schedule",
           "teacher_targets"]


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    teacher: str = ""             # the trained (undistilled) model folder: train's OUT/export
    seed: int = 0
    steps: int = 1_500            # optimiser steps
    batch: int = 8                # teacher trajectories per step (each gives student_steps examples)
    frames: int = 172             # latent frames per trajectory (2 s; the DiT's rotary positions fit any length)
    lr: float = 3e-4
    warmup: int = 50
    ema_decay: float = 0.995
    teacher_steps: int = 8
    student_steps: int = 4
    cfg_scale: float = 5.0        # the guidance the student learns to include
    reuse: int = 2                # optimiser steps per teacher batch (the teacher is over half of a step's time)
    mood_tempo_coupling: float = 0.4  # caption distribution as the teacher's training corpus
    griffin_lim_iters: int = 0    # the exported decoder's Griffin-Lim iterations (0: the teacher's)
    init_from: str = ""           # a model folder (an earlier student) whose weights start the student
    beat_dropout: float = 0.2     # a beat-conditioned teacher: the share of trajectories given no beat


def rf_schedule(steps: int) -> torch.Tensor:
    """The time points upstream's ``sample_rf`` walks for ``steps`` Euler steps (1 -> 0)."""
    t = torch.sigmoid(-torch.linspace(-6.0, 2.0, steps + 1))
    t[0], t[-1] = 1.0, 0.0
    return t


def teacher_targets(teacher: tp.Any, inputs: dict[str, tp.Any], noise: torch.Tensor, *, teacher_steps: int,
                    student_steps: int, cfg_scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x, t, v): the student's inputs and target velocities along the teacher's guided trajectory.

    ``x`` stacks the trajectory at the student's time points ([student_steps * B, C, T]), ``t``
    their times, ``v`` the velocity of one student Euler step that lands where
    ``teacher_steps / student_steps`` guided teacher steps land.
    """
    if teacher_steps % student_steps:
        raise ValueError(f"teacher steps ({teacher_steps}) must be a multiple of student steps ({student_steps})")
    ratio = teacher_steps // student_steps
    ts = rf_schedule(teacher_steps)
    if not torch.allclose(ts[::ratio], rf_schedule(student_steps)):
        raise ValueError(f"the {student_steps}-step schedule is not every {ratio}th point of the "
                         f"{teacher_steps}-step one")
    xs, tt, vs = [], [], []
    x = noise
    with torch.inference_mode():
        for k in range(student_steps):
            start = x
            for i in range(k * ratio, (k + 1) * ratio):
                t_now = ts[i].expand(x.shape[0])
                v = teacher(x, t_now, cfg_scale=cfg_scale, batch_cfg=True, rescale_cfg=True, **inputs)
                x = x + (ts[i + 1] - ts[i]) * v
            xs.append(start)
            tt.append(ts[k * ratio].expand(x.shape[0]))
            vs.append((x - start) / (ts[(k + 1) * ratio] - ts[k * ratio]))
    return torch.cat(xs).clone(), torch.cat(tt).clone(), torch.cat(vs).clone()


def beat_value(attrs: tp.Any, rng: np.random.Generator, dropout: float, seconds: float) -> dict[str, float] | None:
    """A beat for a ``seconds``-long trajectory of a caption with ``attrs``: a BPM in its tempo class' corpus
    range and a random phase (as training crops start anywhere), or None (no beat) for a ``dropout`` share.
    The length matters: the DiT stretches a beat input of another length to the latent's."""
    if rng.random() < dropout:
        return None
    lo, hi = TEMPO_BPM_V2[attrs.tempo]
    return {"bpm": float(rng.uniform(lo, hi)), "phase": float(rng.uniform(0.0, 2.0)), "seconds": seconds}


def _lr(cfg: DistillConfig, step: int) -> float:
    return cosine_lr(step, peak=cfg.lr, warmup=cfg.warmup, total=cfg.steps, floor=0.1)


def _student_config(teacher_folder: Path, cfg: DistillConfig) -> dict[str, tp.Any]:
    config = json.loads((teacher_folder / "model_config.json").read_text())
    config["steerbridge"] = {**config.get("steerbridge", {}), "sampler": "euler", "steps": cfg.student_steps,
                             "cfg_scale": 1.0}
    if cfg.griffin_lim_iters:
        config["model"]["pretransform"]["config"]["griffin_lim_iters"] = cfg.griffin_lim_iters
    return config


def corpus_gaps(cfg: DistillConfig, *, sample_rate: int, log: tp.Callable[[str], None]) -> dict[str, float]:
    """The class gaps of the teacher's training corpus (FluidSynth, its caption coupling), which the logged
    shift / gap divides by; nan without FluidSynth (distillation needs no audio otherwise)."""
    from steerbridge.engine.demo.fluid import FluidSynthMissing, find_fluidsynth

    try:
        find_fluidsynth()
    except FluidSynthMissing as exc:
        log(f"prompt following is logged without shift / gap: {exc}")
        return {a: math.nan for a in CONTRASTS}
    return synthetic_class_gaps(clips=120, seed=cfg.seed, options=CorpusOptions(
        synth="fluidsynth", mood_tempo_coupling=cfg.mood_tempo_coupling, sample_rate=sample_rate))


def _eval(ema: tp.Any, cfg: DistillConfig, step: int, out: Path, log: RunLog, gaps: dict[str, float],
          pairs: int) -> None:
    t0 = time.perf_counter()
    stats = (prompt_following(ema, gaps=gaps, pairs=pairs, steps=cfg.student_steps, cfg_scale=1.0,
                              second_opinions=beat_tracker()) if pairs else [])
    for s in stats:
        log(f"eval step {step}: {s.line()}")
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "time": time.time(),
                            "follow": [dataclasses.asdict(s) for s in stats]}) + "\n")
    size = export_model(ema, out / "export", _student_config(Path(cfg.teacher), cfg))
    log(f"eval took {time.perf_counter() - t0:.0f} s; exported {out / 'export'} ({size / 1e6:.1f} MB, "
        f"strict load ok) at step {step}")


def export_checkpoint(out: Path, *, griffin_lim_iters: int = 0) -> int:
    """Export ``out/checkpoint.pt``'s EMA student to ``out/export``; return the weights' size in bytes."""
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    cfg = DistillConfig(**ckpt["config"])
    cfg = dataclasses.replace(cfg, griffin_lim_iters=griffin_lim_iters or cfg.griffin_lim_iters)
    student = load_model_folder(Path(cfg.teacher))
    student.load_state_dict(ckpt["ema"], strict=True)
    return export_model(student, out / "export", _student_config(Path(cfg.teacher), cfg))


def distill(out: Path, *, cfg: DistillConfig, minutes: float | None, resume: bool, threads: int,
            checkpoint_minutes: float = 5.0, eval_minutes: float = 20.0, eval_pairs: int = 8) -> None:
    """Distil (or resume) into ``out``."""
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    log = RunLog(out, "distill.log")
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        sys.exit(f"{ckpt_path} exists: pass --resume to continue it, or choose another --out")
    ckpt = None
    if resume:
        if not ckpt_path.exists():
            sys.exit(f"--resume: no checkpoint at {ckpt_path}")
        ckpt = torch.load(ckpt_path, weights_only=True)
        # the stored config wins but for the length and the teacher's place: a teacher folder may move
        # (the shipped demo model was the teacher's folder before the student replaced it)
        stored = DistillConfig(**ckpt["config"])
        if cfg.teacher and Path(cfg.teacher).resolve() != Path(stored.teacher).resolve():
            log(f"resuming with the teacher at {cfg.teacher} (the checkpoint names {stored.teacher})")
        cfg = dataclasses.replace(stored, steps=cfg.steps, teacher=cfg.teacher or stored.teacher)
    teacher_folder = Path(cfg.teacher)
    if not (teacher_folder / "model.safetensors").exists():
        sys.exit(f"--teacher {teacher_folder}: no model.safetensors there (give the demo model folder)")
    teacher = load_model_folder(teacher_folder)
    student = copy.deepcopy(teacher).train().requires_grad_(True)
    if cfg.init_from and ckpt is None:  # e.g. the shipped student, grown to take the teacher's beat input
        from steerbridge.engine.demo.train import init_weights_from

        log(init_weights_from(student, Path(cfg.init_from)))
    no_activation_checkpointing(student)
    student.pretransform.requires_grad_(False)
    student.conditioner.requires_grad_(False)
    params = [p for p in student.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    ema = copy.deepcopy(student).eval().requires_grad_(False)
    rng = np.random.default_rng(cfg.seed)
    options = CorpusOptions(mood_tempo_coupling=cfg.mood_tempo_coupling)
    step = 0
    if ckpt is not None:
        student.load_state_dict(ckpt["student"], strict=True)
        ema.load_state_dict(ckpt["ema"], strict=True)
        opt.load_state_dict(ckpt["opt"])
        rng.bit_generator.state = ckpt["np_rng"]
        step = ckpt["step"]
        # The codec is the teacher's and frozen: a teacher trained again on a changed corpus brings band
        # statistics refitted on it, and the student's targets live in that teacher's latent space.
        for m in (student, ema):
            m.pretransform.load_state_dict(teacher.pretransform.state_dict())
        log(f"resumed at step {step}")
    else:
        (out / "distill_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    log(f"distilling {teacher_folder} ({cfg.teacher_steps} steps, CFG {cfg.cfg_scale:g}) into "
        f"{cfg.student_steps} steps without CFG; {cfg}")
    gaps = corpus_gaps(cfg, sample_rate=teacher.sample_rate, log=log) if eval_pairs else {}
    beat = "beat" in teacher.conditioner.conditioners
    seconds = cfg.frames * teacher.pretransform.downsampling_ratio / teacher.sample_rate

    def save() -> None:
        atomic_save({"step": step, "student": student.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                     "np_rng": rng.bit_generator.state, "config": dataclasses.asdict(cfg)}, ckpt_path)
        log(f"checkpoint step {step} -> {ckpt_path}")

    cadence = Cadence(minutes=minutes, checkpoint_minutes=checkpoint_minutes, eval_minutes=eval_minutes)
    start = cadence.start
    losses: list[float] = []
    while step < cfg.steps and cadence.running():
        drawn, texts = [], []
        for _ in range(cfg.batch):  # drawn and captioned in turn: the random stream of the runs before beats
            drawn.append(sample_attributes(rng, options=options))
            texts.append(caption(drawn[-1], rng=rng))
        meta = [{"prompt": s} for s in texts]
        if beat:
            for m, a in zip(meta, drawn):
                m["beat"] = beat_value(a, rng, cfg.beat_dropout, seconds)
        noise = torch.randn(cfg.batch, teacher.io_channels, cfg.frames,
                            generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + step))
        with torch.inference_mode():
            inputs = teacher.get_conditioning_inputs(teacher.conditioner(meta, "cpu"))
        x, t, v = teacher_targets(teacher.model, inputs, noise, teacher_steps=cfg.teacher_steps,
                                  student_steps=cfg.student_steps, cfg_scale=cfg.cfg_scale)
        student_inputs = {k: (torch.cat([val] * cfg.student_steps).clone() if torch.is_tensor(val) else val)
                          for k, val in inputs.items()}
        for _ in range(min(cfg.reuse, cfg.steps - step)):
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step)
            pred = student.model(x, t, cfg_scale=1.0, **student_inputs)
            step += 1
            losses.append(optimise(torch.nn.functional.mse_loss(pred, v), opt, params, model=student, ema=ema,
                                   ema_decay=cfg.ema_decay))
            if step % 10 == 0:
                log(rate_line(step, cfg.steps, losses, _lr(cfg, step), start, window=10))
        cadence.tick(step, save, lambda: _eval(ema, cfg, step, out, log, gaps, eval_pairs))
    cadence.finish(step, save, lambda: _eval(ema, cfg, step, out, log, gaps, eval_pairs))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (checkpoint, log, export)")
    ap.add_argument("--teacher",
                    help="the trained model folder to distil: `python -m steerbridge.engine.demo.train`'s OUT/export "
                         "(not the shipped demo model, which is already a distilled student)")
    ap.add_argument("--minutes", type=float, default=None, help="stop (checkpoint + export) after N minutes")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ap.add_argument("--steps", type=int, default=DistillConfig.steps, help="total optimiser steps")
    ap.add_argument("--batch", type=int, default=DistillConfig.batch, help="teacher trajectories per step")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of the teacher's trajectories")
    ap.add_argument("--lr", type=float, default=DistillConfig.lr)
    ap.add_argument("--reuse", type=int, default=DistillConfig.reuse, help="optimiser steps per teacher batch")
    ap.add_argument("--seed", type=int, default=DistillConfig.seed)
    ap.add_argument("--griffin-lim-iters", type=int, default=0,
                    help="Griffin-Lim iterations of the exported model's decoder (0: the teacher's; "
                         "benchmarks/demo_decoders.py compares them)")
    ap.add_argument("--init-from", default="",
                    help="start the student from this model folder's weights (e.g. the shipped student when the "
                         "teacher adds the beat input; grown input projections start at zero)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--eval-minutes", type=float, default=20.0)
    ap.add_argument("--eval-pairs", type=int, default=8, help="caption pairs per contrast (0: no eval)")
    ap.add_argument("--export-only", action="store_true",
                    help="export OUT/checkpoint.pt's EMA student to OUT/export (with --griffin-lim-iters) and exit")
    args = ap.parse_args(argv)
    if args.export_only:
        print(f"exported {export_checkpoint(args.out, griffin_lim_iters=args.griffin_lim_iters) / 1e6:.1f} MB "
              f"to {args.out / 'export'}")
        return
    if not args.teacher or not (Path(args.teacher) / "model_config.json").is_file():
        ap.error(f"--teacher {args.teacher or '(missing)'}: give the trained model folder (train's OUT/export, "
                 "with model_config.json + model.safetensors)")
    config = json.loads((Path(args.teacher) / "model_config.json").read_text())
    cfg = DistillConfig(teacher=str(Path(args.teacher).resolve()), seed=args.seed, steps=args.steps, batch=args.batch,
                        frames=latent_frames(config, args.seconds), lr=args.lr, reuse=args.reuse,
                        griffin_lim_iters=args.griffin_lim_iters, init_from=args.init_from)
    distill(args.out, cfg=cfg, minutes=args.minutes, resume=args.resume, threads=args.threads,
            checkpoint_minutes=args.checkpoint_minutes, eval_minutes=args.eval_minutes, eval_pairs=args.eval_pairs)


if __name__ == "__main__":
    main()
