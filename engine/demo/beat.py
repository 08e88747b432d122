"""Beat conditioning: the demo model told where the beats fall, as input channels beside the latent.

Why: the models trained on text alone play notes at the right *rate* but not
on a steady grid (their inter-onset intervals vary five times as much as the
corpus'; benchmarks/demo_timekeeping.py), so a beat tracker hears its own
prior whatever the words say. Giving the beat as an input, the way Stable
Audio gives the timing as a number, makes keeping time a local job (put
the onsets where the phase says) instead of one the model must invent.

The conditioner ``steerbridge_beat`` turns a value per batch item into four
channels at the latent's frame rate: sin/cos of the beat phase and of the
two-beat phase (the corpus changes chord and alternates bass note and snare
every two beats). A value is:

- a number: the BPM, with the first frame on a downbeat, over the model's
  sample length;
- a dict ``{"bpm": ..., "seconds": ..., "phase": ...}``: ``phase`` is the
  beats elapsed at the first frame (training crops start mid-beat);
- anything else (``None``, or the prompt string when the caller gives no
  ``beat`` key: the config maps ``beat`` to ``prompt`` by default): no beat,
  all-zero channels, which training shows the model in a fraction of steps
  so it still renders from text alone.

The model gets them through stable-audio-tools' own ``input_concat_ids``
path: an ordinary strict model folder, loaded through the factory.
"""

from __future__ import annotations

import copy
import math
import typing as tp

import numpy as np
import torch
from torch import nn

from steerbridge.engine.runtime.components import register_conditioner
from steerbridge.engine.vocab import MAX_BPM, MIN_BPM

__all__ = ["BEAT_CHANNELS", "BeatConditioner", "beat_features", "with_beat"]

BEAT_CHANNELS = 4


def beat_features(bpm: float, frames: int, *, frame_rate: float, phase: float = 0.0) -> np.ndarray:
    """[4, frames]: sin/cos of the beat phase and of the two-beat phase at each latent frame."""
    beats = phase + np.arange(frames) / frame_rate * bpm / 60.0
    one, two = 2 * np.pi * beats, np.pi * beats
    return np.stack([np.sin(one), np.cos(one), np.sin(two), np.cos(two)]).astype(np.float32)


class BeatConditioner(nn.Module):
    """Beat values -> ([B, 4, frames] channels, [B, frames] mask); no parameters."""

    def __init__(self, *, output_dim: int, sample_rate: int, hop: int, patch_size: int, seconds: float) -> None:
        super().__init__()
        del output_dim  # the channels are concatenated to the latent, not projected
        self.sample_rate, self.hop, self.patch_size, self.seconds = sample_rate, hop, patch_size, seconds

    def frames(self, seconds: float) -> int:
        """Latent frames of ``seconds``, a whole number of DiT patches (as the model's input is)."""
        n = int(round(seconds * self.sample_rate / self.hop))
        return n - n % self.patch_size

    def forward(self, values: list[tp.Any], device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        beats = [_parse(v) for v in values]
        seconds = max([b["seconds"] for b in beats if b and b.get("seconds")] or [self.seconds])
        frames = self.frames(seconds)
        rate = self.sample_rate / self.hop
        out = np.zeros((len(values), BEAT_CHANNELS, frames), dtype=np.float32)
        for i, b in enumerate(beats):
            if b:
                out[i] = beat_features(b["bpm"], frames, frame_rate=rate, phase=b.get("phase", 0.0))
        x = torch.from_numpy(out).to(device)
        return x, torch.ones(len(values), frames, dtype=torch.bool, device=device)


def _parse(value: tp.Any) -> dict[str, float] | None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, (int, float)):
        value = {"bpm": float(value)}
    if not isinstance(value, dict):
        raise TypeError(f"beat: expected a BPM number or a dict with 'bpm', got {type(value).__name__}")
    unknown = set(value) - {"bpm", "seconds", "phase"}
    if unknown or "bpm" not in value:
        raise ValueError(f"beat: expected the keys bpm (and optionally seconds, phase), got {sorted(value)}")
    bpm = float(value["bpm"])
    if not (math.isfinite(bpm) and MIN_BPM <= bpm <= MAX_BPM):
        raise ValueError(f"beat: bpm {bpm} is outside {MIN_BPM:g}..{MAX_BPM:g}")
    return {k: float(v) for k, v in value.items()}


def with_beat(config: dict[str, tp.Any]) -> dict[str, tp.Any]:
    """``config`` (a demo model config) with the beat conditioner concatenated to the DiT's input."""
    config = copy.deepcopy(config)
    model = config["model"]
    cond = model["conditioning"]
    if any(c["id"] == "beat" for c in cond["configs"]):
        return config
    cond["configs"].append({"id": "beat", "type": "steerbridge_beat", "config": {
        "sample_rate": config["sample_rate"], "hop": model["pretransform"]["config"]["hop"],
        "patch_size": model["diffusion"]["config"]["patch_size"],
        "seconds": config["sample_size"] / config["sample_rate"]}})
    cond.setdefault("default_keys", {})["beat"] = "prompt"  # no beat given: zeros
    model["diffusion"]["input_concat_ids"] = ["beat"]
    model["diffusion"]["config"]["input_concat_dim"] = BEAT_CHANNELS
    return config


register_conditioner("steerbridge_beat", lambda cfg: BeatConditioner(**cfg))
