"""Train the demo model: one seeded, resumable command.

    python -m steerbridge.engine.demo.train --out out/demo-train [--minutes N] [--resume]

What it does, top to bottom: build (or reuse) the corpus cache under
``OUT/cache``; build the model from ``engine/demo/config.json`` through the
upstream factory; train with the rectified-flow objective upstream's
``DiffusionCondTrainingWrapper`` uses for ``diffusion_objective:
rectified_flow`` (logit-normal t, x_t = (1 - t) x0 + t noise, target noise -
x0, MSE), 10 % cross-attention dropout for classifier-free guidance, an
independent 10 % dropout of the pooled (global) text embedding so the
cross-attention path must carry the prompt too (that is where steering
vectors are taken), AdamW with linear warm-up and cosine decay, EMA, and bf16
autocast optionally (``--bf16``: faster only on CPUs with native bf16; on this
project's 2-core AMD EPYC a bf16 step took 100 s vs 5.5 s in fp32, so fp32 is
the default), and training on random ``--crop-seconds`` windows of the 4 s
latents (the DiT's rotary positions make any length valid at sampling time;
a 2 s crop halves the cost of a step). Every few minutes the
state is checkpointed atomically (``OUT/checkpoint.pt``); every
``--eval-minutes`` the EMA model's prompt-following is measured and logged.
When the step budget or ``--minutes`` runs out (or on SIGTERM) it
checkpoints and exports ``OUT/export/`` (model_config.json +
model.safetensors, EMA weights in fp16), verified by a strict load through the
factory. ``--resume`` continues from the checkpoint with the stored options.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import time
import typing as tp
from pathlib import Path

import numpy as np
import torch

from steerbridge.engine.demo.beat import with_beat
from steerbridge.engine.demo.captions import caption
from steerbridge.engine.demo.corpus import CorpusOptions, beat_grid
from steerbridge.engine.demo.data import CorpusCache, build_cache, class_gaps
from steerbridge.engine.demo.follow import beat_tracker, prompt_following
from steerbridge.engine.demo.model import (CONFIG_PATH, build_model, export_model, latent_frames,
                                           no_activation_checkpointing)
from steerbridge.engine.demo.runlog import Cadence, RunLog, atomic_save, cosine_lr, optimise, rate_line

__all__ = ["TrainConfig", "init_weights_from", "model_config", "onset_loss", "train", "main"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    clips: int = 10_000
    batch: int = 32
    steps: int = 4_000
    lr: float = 1e-3
    warmup: int = 150
    final_lr_fraction: float = 0.05
    weight_decay: float = 0.01
    cfg_dropout: float = 0.1
    global_dropout: float = 0.1
    ema_decay: float = 0.999
    mood_tempo_coupling: float = 0.4
    bf16: bool = False
    crop_frames: int = 0  # 0: whole clips
    synth: str = "fluidsynth"
    slow_swing: bool = False  # corpus: slow clips shuffle (CorpusOptions.slow_swing)
    onset_weight: float = 0.0  # weight of the loss on the clean latent's frame-to-frame change (onset timing)
    t_mean: float = 0.0  # mean of the logit-normal noise level; > 0 trains more at high noise, where rhythm forms
    init_from: str = ""  # a model folder whose same-shaped (or smaller, --beat) weights start the training
    beat: bool = False  # condition on the clip's beat (engine/demo/beat.py)
    beat_dropout: float = 0.2  # with --beat: the share of steps shown no beat, so text alone still renders


def _lr(cfg: TrainConfig, step: int) -> float:
    return cosine_lr(step, peak=cfg.lr, warmup=cfg.warmup, total=cfg.steps, floor=cfg.final_lr_fraction)


def model_config(cfg: TrainConfig) -> dict[str, tp.Any]:
    """The model's config: engine/demo/config.json, with the beat input when ``cfg.beat``."""
    config = json.loads(CONFIG_PATH.read_text())
    return with_beat(config) if cfg.beat else config


def _eval(ema: torch.nn.Module, cache: CorpusCache, step: int, out: Path, log: RunLog, *,
          pairs: int, config: dict[str, tp.Any], bf16: bool = False) -> None:
    """Log prompt-following of the EMA model and export it (a usable model at every eval)."""
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        stats = (prompt_following(ema, gaps=class_gaps(cache), pairs=pairs, second_opinions=beat_tracker())
                 if pairs else [])
    for s in stats:
        log(f"eval step {step}: {s.line()}")
    log(f"eval took {time.perf_counter() - t0:.0f} s")
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "time": time.time(),
                            "follow": [dataclasses.asdict(s) for s in stats]}) + "\n")
    size = export_model(ema, out / "export", config)
    log(f"exported {out / 'export'} ({size / 1e6:.1f} MB, strict load ok) at step {step}")


def onset_loss(pred: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """MSE of the frame-to-frame change of the predicted clean latent (x0 = xt - t * v) against the clip's.

    The velocity MSE charges a note that starts two frames late only at those
    frames, little beside the sustained spectrum, and the models it trained
    played onsets at uneven intervals (benchmarks/demo_timekeeping.py); the
    change between frames is where an onset is, so this term charges the
    timing. At weight 6 (about the velocity loss' size) a 2,400-step fine-tune
    did not make the renders keep time (docs/demo-model.md, Timekeeping)."""
    x0_hat = xt - t[:, None, None] * pred
    return torch.nn.functional.mse_loss(x0_hat.diff(dim=-1), x0.diff(dim=-1))


def init_weights_from(model: torch.nn.Module, folder: Path) -> str:
    """Copy every weight whose name and shape match from ``folder``'s model (the rest stay fresh).

    The second-generation model keeps the first's transformer and text layers
    but not its latent (other bands, patch size): its in/out projections start
    fresh while what was learnt about the prompts carries over. A tensor that
    only grew (the DiT's input projections when ``--beat`` adds input
    channels, which come last) keeps the old weights in its leading block and
    zeros in the rest: the extended model starts as the old one, blind to the
    new channels until training teaches it to read them."""
    from safetensors.torch import load_file

    source = load_file(str(folder / "model.safetensors"))
    state = model.state_dict()
    same, grown = {}, {}
    for k, v in source.items():
        if k not in state or k.startswith("pretransform."):
            continue
        if v.shape == state[k].shape:
            same[k] = v.to(state[k].dtype)
        elif v.dim() == state[k].dim() and all(a <= b for a, b in zip(v.shape, state[k].shape)):
            w = torch.zeros_like(state[k])
            w[tuple(slice(0, n) for n in v.shape)] = v.to(w.dtype)
            grown[k] = w
    state.update(same)
    state.update(grown)
    model.load_state_dict(state, strict=True)
    return (f"init from {folder}: {len(same)} of {len(state)} tensors reused"
            + (f", {len(grown)} grown ({', '.join(sorted(grown))})" if grown else ""))


def _beat_values(grids: list[tuple[float, float]], idx: np.ndarray, starts: np.ndarray, frames: int,
                 hop_s: float, rng: np.random.Generator, dropout: float) -> list[tp.Any]:
    """Per batch item, the beat conditioner's value for the window of ``frames`` (``hop_s`` seconds each)
    from frame ``starts`` of clip ``idx`` (whose (BPM, first beat) is in ``grids``); None, no beat, for a
    ``dropout`` share."""
    out: list[tp.Any] = []
    for i, s in zip(idx, starts):
        bpm, first = grids[int(i)]
        out.append(None if rng.random() < dropout else
                   {"bpm": bpm, "seconds": frames * hop_s, "phase": (int(s) * hop_s - first) * bpm / 60.0})
    return out


def train(out: Path, *, cfg: TrainConfig, minutes: float | None, resume: bool, threads: int,
          checkpoint_minutes: float, eval_minutes: float, eval_pairs: int = 8,
          until_step: int | None = None) -> None:
    """Train (or resume) into ``out``; ``until_step`` stops early as an interruption would."""
    torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    log = RunLog(out)
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists() and not resume:
        sys.exit(f"{ckpt_path} exists: pass --resume to continue it, or choose another --out")
    if resume:
        if not ckpt_path.exists():
            sys.exit(f"--resume: no checkpoint at {ckpt_path}")
        ckpt = torch.load(ckpt_path, weights_only=False)
        # The stored options win, except a longer (or shorter) step budget asked for now.
        cfg = dataclasses.replace(TrainConfig(**ckpt["config"]), steps=cfg.steps)
    torch.manual_seed(cfg.seed)
    config = model_config(cfg)
    model = build_model(config)
    no_activation_checkpointing(model)
    options = CorpusOptions(mood_tempo_coupling=cfg.mood_tempo_coupling, synth=cfg.synth,
                            sample_rate=config["sample_rate"], slow_swing=cfg.slow_swing)
    if cfg.synth == "fluidsynth":
        from steerbridge.engine.demo.fluid import find_fluidsynth

        find_fluidsynth()  # fail now, with how to install it, not after minutes of set-up
    cache = build_cache(out / "cache", clips=cfg.clips, seed=cfg.seed, options=options,
                        codec=model.pretransform, codec_config=config["model"]["pretransform"], log=log)
    hop_s = config["model"]["pretransform"]["config"]["hop"] / config["sample_rate"]
    grids = [beat_grid(int(s), options=options) for s in cache.seeds] if cfg.beat else []
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    rng = np.random.default_rng(cfg.seed)
    step = 0
    if cfg.init_from and not resume:
        log(init_weights_from(model, Path(cfg.init_from)))
        ema.load_state_dict(model.state_dict())
    if resume:
        model.load_state_dict(ckpt["model"], strict=True)
        ema.load_state_dict(ckpt["ema"], strict=True)
        opt.load_state_dict(ckpt["opt"])
        rng.bit_generator.state = ckpt["np_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        step = ckpt["step"]
        log(f"resumed at step {step}")
    else:
        (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    log(f"model {sum(p.numel() for p in params) / 1e6:.2f} M trainable params; config {cfg}")

    def save() -> None:
        atomic_save({"step": step, "model": model.state_dict(), "ema": ema.state_dict(),
                      "opt": opt.state_dict(), "np_rng": rng.bit_generator.state,
                      "torch_rng": torch.get_rng_state(), "config": dataclasses.asdict(cfg)}, ckpt_path)
        log(f"checkpoint step {step} -> {ckpt_path}")

    cadence = Cadence(minutes=minutes, checkpoint_minutes=checkpoint_minutes, eval_minutes=eval_minutes)
    start = cadence.start
    losses: list[float] = []
    n = len(cache.attrs)
    model.train()
    while step < cfg.steps and cadence.running():
        if until_step is not None and step >= until_step:
            break
        idx = np.sort(rng.integers(n, size=cfg.batch))
        x0 = torch.from_numpy(np.asarray(cache.latents[idx], dtype=np.float32))
        starts = np.zeros(cfg.batch, dtype=int)
        if 0 < cfg.crop_frames < x0.shape[-1]:
            starts = rng.integers(x0.shape[-1] - cfg.crop_frames + 1, size=cfg.batch)
            x0 = torch.stack([x[:, s:s + cfg.crop_frames] for x, s in zip(x0, starts)])
        texts = [caption(cache.attrs[i], rng=rng) for i in idx]
        meta = [{"prompt": s} for s in texts]
        if cfg.beat:
            for m, b in zip(meta, _beat_values(grids, idx, starts, x0.shape[-1], hop_s, rng, cfg.beat_dropout)):
                m["beat"] = b
        t = torch.sigmoid(torch.randn(cfg.batch) + cfg.t_mean)  # logit-normal, as upstream's RF default (mean 0)
        noise = torch.randn_like(x0)
        xt = (1 - t)[:, None, None] * x0 + t[:, None, None] * noise
        for group in opt.param_groups:
            group["lr"] = _lr(cfg, step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            cond = model.conditioner(meta, "cpu")
            keep = (torch.rand(cfg.batch) >= cfg.global_dropout).float()[:, None, None]
            pooled, mask = cond["prompt_pooled"]
            cond["prompt_pooled"] = (pooled * keep, mask)
            pred = model(xt, t, cond=cond, cfg_dropout_prob=cfg.cfg_dropout)
        loss = torch.nn.functional.mse_loss(pred.float(), noise - x0)
        if cfg.onset_weight:
            loss = loss + cfg.onset_weight * onset_loss(pred.float(), xt, t, x0)
        step += 1
        losses.append(optimise(loss, opt, params, model=model, ema=ema,
                               ema_decay=min(cfg.ema_decay, (1 + step) / (10 + step))))
        if step % 20 == 0:
            log(rate_line(step, cfg.steps, losses, _lr(cfg, step), start, window=20))
        cadence.tick(step, save, lambda: _eval(ema, cache, step, out, log, pairs=eval_pairs, config=config,
                                                   bf16=cfg.bf16))
    cadence.finish(step, save, lambda: _eval(ema, cache, step, out, log, pairs=eval_pairs, config=config,
                                                   bf16=cfg.bf16))


def _crop_frames(seconds: float) -> int:
    return latent_frames(json.loads(CONFIG_PATH.read_text()), seconds)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (cache, checkpoint, log, export)")
    ap.add_argument("--minutes", type=float, default=None, help="stop (checkpoint + export) after N minutes")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ap.add_argument("--steps", type=int, default=TrainConfig.steps, help="total optimiser steps")
    ap.add_argument("--clips", type=int, default=TrainConfig.clips, help="corpus size")
    ap.add_argument("--seed", type=int, default=TrainConfig.seed)
    ap.add_argument("--batch", type=int, default=TrainConfig.batch)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--synth", choices=("fluidsynth", "procedural"), default=TrainConfig.synth,
                    help="corpus synthesiser (fluidsynth: General MIDI instruments; needs fluidsynth installed)")
    ap.add_argument("--slow-swing", action="store_true",
                    help="slow clips shuffle their off-beats, so a beat tracker does not hear double tempo")
    ap.add_argument("--onset-weight", type=float, default=TrainConfig.onset_weight,
                    help="weight of the onset-timing loss (frame-to-frame change of the clean latent; 0: off)")
    ap.add_argument("--t-mean", type=float, default=TrainConfig.t_mean,
                    help="mean of the logit-normal noise level (0: upstream's; > 0: more training at high noise)")
    ap.add_argument("--beat", action="store_true",
                    help="condition on the clip's beat (BPM and phase as input channels; engine/demo/beat.py)")
    ap.add_argument("--crop-seconds", type=float, default=0.0, help="train on random windows this long (0: whole)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (only on CPUs with native bf16)")
    ap.add_argument("--init-from", default="", help="model folder whose same-shaped weights start training")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--eval-minutes", type=float, default=20.0)
    ap.add_argument("--eval-pairs", type=int, default=8, help="caption pairs per contrast (0: no eval)")
    ap.add_argument("--export-only", action="store_true", help="export OUT/checkpoint.pt's EMA and exit")
    args = ap.parse_args(argv)
    if args.export_only:
        ckpt = torch.load(args.out / "checkpoint.pt", weights_only=False)
        config = model_config(TrainConfig(**ckpt["config"]))
        ema = build_model(config)
        ema.load_state_dict(ckpt["ema"], strict=True)
        print(f"exported {export_model(ema, args.out / 'export', config) / 1e6:.1f} MB to {args.out / 'export'}")
        return
    cfg = TrainConfig(seed=args.seed, steps=args.steps, clips=args.clips, batch=args.batch, lr=args.lr,
                      synth=args.synth, slow_swing=args.slow_swing,
                      onset_weight=args.onset_weight, t_mean=args.t_mean, init_from=args.init_from, bf16=args.bf16,
                      beat=args.beat,
                      crop_frames=_crop_frames(args.crop_seconds))
    train(args.out, cfg=cfg, minutes=args.minutes, resume=args.resume, threads=args.threads,
          checkpoint_minutes=args.checkpoint_minutes, eval_minutes=args.eval_minutes,
          eval_pairs=args.eval_pairs)


if __name__ == "__main__":
    main()
