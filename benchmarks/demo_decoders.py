"""Griffin-Lim vs HiFi-GAN for the demo model's mel: resynthesis distance and time per 4 s loop.

    .venv/bin/python benchmarks/demo_decoders.py [--clips 8] [--out docs/demo-model]

Held-out corpus clips (FluidSynth, seeds no training clip uses) are encoded
once by the demo codec; both decoders then invert the *same* magnitudes. The
distance is the multi-resolution log-spectral distance (mean |log S - log S'|
over STFTs of 512, 1024 and 2048 points; lower is closer to the original);
time is the median decode of one 4 s loop on this machine, measured side by
side in one run. ``--griffin-lim-iters 32 16`` compares iteration counts
(fewer: faster, more phasey). Needs FluidSynth (training-time dependency) and the HiFi-GAN
wheel. Prints ``name: value`` lines and writes ``decoders.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from steerbridge.engine.demo.codec import DECODERS
from steerbridge.engine.demo.corpus import CorpusOptions, make_clips
from steerbridge.engine.demo.model import load_model_folder

_EVAL_SEEDS = 8_500_000  # outside every training corpus (seed * 1e6 + i for seed < 8)


def log_spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    out = []
    for n_fft in (512, 1024, 2048):
        w = torch.hann_window(n_fft)
        spec = [torch.stft(torch.from_numpy(np.ascontiguousarray(x[:n], dtype=np.float32)), n_fft, n_fft // 4,
                           window=w, return_complex=True).abs() for x in (a, b)]
        out.append(float((torch.log(spec[0] + 1e-5) - torch.log(spec[1] + 1e-5)).abs().mean()))
    return float(np.mean(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=Path("engine/models/demo"), help="demo model folder (its codec)")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="timed decodes per decoder")
    ap.add_argument("--out", type=Path, default=Path("out/decoders"))
    ap.add_argument("--griffin-lim-iters", type=int, nargs="+", default=None,
                    help="Griffin-Lim iteration counts to compare (default: the model's own only)")
    args = ap.parse_args(argv)
    codec = load_model_folder(args.model).pretransform
    options = CorpusOptions(synth="fluidsynth", sample_rate=codec.sample_rate, include_held_out=True)
    clips = make_clips([_EVAL_SEEDS + i for i in range(args.clips)], options=options)
    n = len(clips[0].audio) // codec.hop * codec.hop
    audio = torch.from_numpy(np.stack([c.audio[:n] for c in clips]))[:, None]
    z = codec.encode(audio)
    result: dict = {"command": " ".join(["benchmarks/demo_decoders.py", *(sys.argv[1:] if argv is None else argv)]),
                    "clips": args.clips, "loop_s": n / codec.sample_rate, "threads": torch.get_num_threads()}
    variants = [(name, None) for name in DECODERS if name != "griffin-lim"]
    variants = [("griffin-lim", it) for it in (args.griffin_lim_iters or [codec.iters])] + variants
    for decoder, iters in variants:
        codec.decoder = decoder
        name = decoder if iters is None else f"{decoder}-{iters}"
        if iters is not None:
            codec.iters = iters
        out = codec.decode(z)[:, 0].numpy()
        dist = [log_spectral_distance(c.audio[:n], y) for c, y in zip(clips, out)]
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            codec.decode(z[:1])
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        result[name] = {"decoder": decoder, "iters": iters, "distance_mean": float(np.mean(dist)), "distance_per_clip": dist, "decode_s": med,
                        "realtime_factor": result["loop_s"] / med}
        print(f"{name}_distance: {np.mean(dist):.3f}")
        print(f"{name}_decode_s: {med:.3f}")
        print(f"{name}_realtime_factor: {result['loop_s'] / med:.1f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decoders.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
