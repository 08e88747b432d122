"""Demo corpus and codec, measured side by side in one run.

    python benchmarks/demo_data.py [--clips 300]

Prints the corpus synthesis speed (one thread), how well each descriptor
separates its labelled classes (ROC AUC) on the original clips and after the
codec round trip (encode -> Griffin-Lim decode), and the codec's speed.
Headline figures come last, one per line, as ``name: value``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from steerbridge.engine.demo.codec import MelCodec
from steerbridge.engine.demo.corpus import SAMPLE_RATE, make_clip
from steerbridge.engine.demo.data import CONTRASTS
from steerbridge.engine.evaluation.descriptors import describe


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a positive-class value exceeds a negative-class one (ties count half)."""
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def separation(clips: list, audio: np.ndarray) -> dict[str, float]:
    desc = [describe(a, SAMPLE_RATE) for a in audio]
    out = {}
    for attribute, (pos, neg, name) in CONTRASTS.items():
        values = np.array([getattr(d, name) for d in desc])
        labels = np.array([getattr(c.attrs, attribute) for c in clips])
        out[f"{attribute}/{name}"] = auc(values[labels == pos], values[labels == neg])
    values = np.array([d.tempo_bpm for d in desc])
    labels = np.array([c.attrs.tempo for c in clips])
    out["tempo/tempo_bpm"] = auc(values[labels == "fast"], values[labels == "slow"])
    bpm = np.array([c.bpm for c in clips])
    out["tempo_bpm within 8%"] = float(np.mean(np.abs(values / bpm - 1) < 0.08))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    clips = [make_clip(900_000 + s) for s in range(args.clips)]
    per_min = args.clips / (time.perf_counter() - t0) * 60
    audio = np.stack([c.audio for c in clips])
    codec = MelCodec(sample_rate=SAMPLE_RATE)
    x = torch.from_numpy(audio)[:, None]
    codec.fit(x)
    t0 = time.perf_counter()
    z = codec.encode(x)
    enc_ms = (time.perf_counter() - t0) / len(clips) * 1000
    t0 = time.perf_counter()
    decoded = torch.cat([codec.decode(z[i:i + 1]) for i in range(len(clips))])[:, 0].numpy()
    dec_ms = (time.perf_counter() - t0) / len(clips) * 1000
    orig, rt = separation(clips, audio), separation(clips, decoded)
    print(f"{'descriptor AUC':28s} {'original':>9s} {'roundtrip':>9s}")
    for key in orig:
        print(f"{key:28s} {orig[key]:9.3f} {rt[key]:9.3f}")
    print(f"corpus_clips_per_min_1_thread: {per_min:.0f}")
    print(f"codec_encode_ms_per_clip: {enc_ms:.1f}")
    print(f"codec_decode_ms_per_clip: {dec_ms:.1f}")
    for key in orig:
        print(f"auc_{key.replace('/', '_').replace(' ', '_')}: {orig[key]:.3f} -> {rt[key]:.3f}")


if __name__ == "__main__":
    main()
