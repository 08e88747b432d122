"""The training set on disk: corpus clips encoded once to codec latents.

Synthesising and encoding a clip costs ~15 ms; a training step on 32 clips
~2 s. Encoding once and reading latents back keeps both CPU cores on the
model. The cache is a folder:

- ``latents.npy``: float16 [clips, bands, frames] (memory-mapped when read);
- ``meta.json``: corpus options, seeds, each clip's attributes and BPM, the
  codec's fitted band statistics, and per-class descriptor means of the
  clips (the "gap between classes in the training data" that
  prompt-following is measured against).

Written into a temporary folder and renamed at the end, so an interrupted
build leaves no half cache behind; a finished cache is reused when its
options match.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import typing as tp
from pathlib import Path

import numpy as np
import torch

from steerbridge.engine.demo.captions import ATTRIBUTES, Attributes
from steerbridge.engine.demo.codec import MelCodec
from steerbridge.engine.demo.corpus import CorpusOptions, make_clips
from steerbridge.engine.evaluation.descriptors import describe

__all__ = ["CONTRASTS", "CorpusCache", "build_cache", "class_gaps", "synthetic_class_gaps"]

_STATS_CLIPS = 512  # clips the band statistics are fitted on
_GAP_CLIPS = 600  # clips described for the per-class descriptor means
# Contrasts measured for prompt-following: attribute -> (positive class,
# negative class, the descriptor expected to rise from negative to positive).
CONTRASTS: dict[str, tuple[str, str, str]] = {
    "brightness": ("bright", "dark", "centroid_hz"),
    "tempo": ("fast", "slow", "onset_rate"),
    "mode": ("major", "minor", "mode_score"),
    "density": ("busy", "sparse", "onset_rate"),
}


@dataclasses.dataclass
class CorpusCache:
    latents: np.ndarray  # float16 [clips, bands, frames]
    attrs: list[Attributes]
    bpm: np.ndarray
    seeds: np.ndarray
    band_mean: np.ndarray
    band_std: np.ndarray
    class_means: dict[str, dict[str, float]]  # descriptor -> "attribute=class" -> mean

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> "CorpusCache":
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        return cls(
            latents=np.load(folder / "latents.npy", mmap_mode="r"),
            attrs=[Attributes(**a) for a in meta["attrs"]],
            bpm=np.asarray(meta["bpm"]),
            seeds=np.asarray(meta["seeds"]),
            band_mean=np.asarray(meta["band_mean"], dtype=np.float32),
            band_std=np.asarray(meta["band_std"], dtype=np.float32),
            class_means=meta["class_means"],
        )


def _key(options: CorpusOptions, clips: int, seed: int, codec_config: dict[str, tp.Any]) -> dict[str, tp.Any]:
    return {"options": dataclasses.asdict(options), "clips": clips, "seed": seed, "codec": codec_config}


def build_cache(folder: str | os.PathLike[str], *, clips: int, seed: int, options: CorpusOptions,
                codec: MelCodec, codec_config: dict[str, tp.Any],
                log: tp.Callable[[str], None] = print) -> CorpusCache:
    """Build (or reuse) the cache; fits ``codec``'s band statistics as a side effect."""
    folder = Path(folder)
    key = _key(options, clips, seed, codec_config)
    if (folder / "meta.json").exists():
        if json.loads((folder / "meta.json").read_text()).get("key") == key:
            cache = CorpusCache.load(folder)
            codec.band_mean.copy_(torch.from_numpy(cache.band_mean))
            codec.band_std.copy_(torch.from_numpy(cache.band_std))
            log(f"corpus cache: reusing {folder} ({clips} clips)")
            return cache
        raise ValueError(f"{folder} holds a corpus cache built with other options; "
                         "delete it or choose another --out")
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    seeds = seed * 1_000_000 + np.arange(clips)
    t0 = time.perf_counter()
    first = make_clips([int(s) for s in seeds[:_STATS_CLIPS]], options=options)
    samples = len(first[0].audio) // codec.hop * codec.hop  # whole codec frames
    codec.fit(torch.from_numpy(np.stack([c.audio[:samples] for c in first]))[:, None])
    frames = samples // codec.hop
    latents = np.lib.format.open_memmap(tmp / "latents.npy", mode="w+", dtype=np.float16,
                                        shape=(clips, codec.encoded_channels, frames))
    attrs: list[Attributes] = []
    bpm: list[float] = []
    descs: list[dict[str, float]] = []
    chunk = 128
    for start in range(0, clips, chunk):
        stop = min(clips, start + chunk)
        batch = (first[start:stop] if stop <= len(first)
                 else make_clips([int(s) for s in seeds[start:stop]], options=options))
        audio = torch.from_numpy(np.stack([c.audio[:samples] for c in batch]))[:, None]
        with torch.no_grad():
            latents[start:start + len(batch)] = codec.encode(audio).numpy().astype(np.float16)
        attrs += [c.attrs for c in batch]
        bpm += [c.bpm for c in batch]
        descs += [describe(c.audio, options.sample_rate).as_dict() for c in batch
                  if len(descs) < _GAP_CLIPS]
        if (start // chunk) % 10 == 0:
            log(f"corpus cache: {start + len(batch)}/{clips} clips, {time.perf_counter() - t0:.0f} s")
    latents.flush()
    del latents
    meta = {
        "key": key, "attrs": [dataclasses.asdict(a) for a in attrs], "bpm": bpm,
        "seeds": seeds.tolist(), "band_mean": codec.band_mean.tolist(),
        "band_std": codec.band_std.tolist(),
        "class_means": _class_means(attrs[: len(descs)], descs),
    }
    (tmp / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    log(f"corpus cache: built {clips} clips in {time.perf_counter() - t0:.0f} s")
    return CorpusCache.load(folder)


def _class_means(attrs: list[Attributes], descs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in descs[0]:
        values = np.array([d[name] for d in descs])
        out[name] = {}
        for attribute, classes in ATTRIBUTES.items():
            labels = np.array([getattr(a, attribute) for a in attrs])
            for c in classes:
                if (labels == c).any():
                    out[name][f"{attribute}={c}"] = float(values[labels == c].mean())
    return out


def _gaps(class_means: dict[str, dict[str, float]]) -> dict[str, float]:
    return {a: class_means[d][f"{a}={p}"] - class_means[d][f"{a}={n}"] for a, (p, n, d) in CONTRASTS.items()}


def class_gaps(cache: CorpusCache) -> dict[str, float]:
    """Training-data gap per contrast (positive class minus negative) on its descriptor."""
    return _gaps(cache.class_means)


def synthetic_class_gaps(clips: int = 300, *, seed: int = 0,
                         options: CorpusOptions | None = None) -> dict[str, float]:
    """:func:`class_gaps` without a cache: synthesise and describe ``clips`` corpus clips.

    The seeds are the training corpus' own (``seed * 1e6 + i``), so with the
    training options these are the clips :func:`build_cache` describes (its
    first 640: the ``_GAP_CLIPS`` limit is checked once per 128-clip chunk);
    ``clips=640`` reproduces the cache's gaps exactly.
    """
    options = options or CorpusOptions()
    batch = make_clips([seed * 1_000_000 + i for i in range(clips)], options=options)
    attrs = [c.attrs for c in batch]
    descs = [describe(c.audio, options.sample_rate).as_dict() for c in batch]
    return _gaps(_class_means(attrs, descs))
