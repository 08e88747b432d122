"""Tonal clarity for benchmarks/demo_acceptance.py: notes basic-pitch hears in renders vs corpus clips.

For held-out captions (the held-out instrument/tempo/mode combinations, every
attribute named), the model's render is compared with corpus clips of exactly
those attributes after the codec round trip (encode + the model's own
decoder), at seeds no training clip used. Reported: notes per 4 s clip in
each, their ratio (pass >= 0.7), and a picture with render and corpus
spectrograms side by side. Needs basic-pitch (``make install``) and FluidSynth
(the corpus); without either the part says so and is skipped.
"""

from __future__ import annotations

import typing as tp
from pathlib import Path

import numpy as np

__all__ = ["TONAL", "held_out_renders", "tonal_part"]

TONAL = {"note_ratio": 0.7}
_SEEDS = 8_700_000  # outside every training corpus


def held_out_renders(model: tp.Any, *, clips: int, steps: int, cfg_scale: float, slow_swing: bool = False,
                     corpus: bool = True, beat: bool = False,
                     ) -> tuple[list[str], list[tp.Any], np.ndarray, tp.Any, tp.Any]:
    """(prompts, attributes, renders, corpus clips after the codec round trip, the corpus clips) for
    ``clips`` held-out captions (every attribute named) at seeds outside every training corpus; ``slow_swing``
    as the corpus the model was trained on (CorpusOptions.slow_swing). ``corpus=False``: renders only (the
    last two are None), for a caller that already has the corpus side. ``beat``: a beat-conditioned model
    (engine/demo/beat.py) is given each corpus clip's BPM and beat phase."""
    import torch

    from steerbridge.engine.demo.captions import ATTRIBUTES, HELD_OUT, caption
    from steerbridge.engine.demo.corpus import CorpusOptions, beat_grid, make_clips, sample_attributes
    from steerbridge.engine.demo.follow import render_audio

    sr = model.sample_rate
    rng = np.random.default_rng(_SEEDS)
    held = sorted(HELD_OUT)
    attrs = []
    for i in range(clips):
        inst, tempo, mode = held[i % len(held)]
        attrs.append(sample_attributes(rng, options=CorpusOptions(include_held_out=True))
                     .replace(instrument=inst, tempo=tempo, mode=mode))
    prompts = [caption(a, rng=np.random.default_rng([_SEEDS, i]), mention={k: True for k in ATTRIBUTES})
               for i, a in enumerate(attrs)]
    options = CorpusOptions(synth="fluidsynth", sample_rate=sr, include_held_out=True, slow_swing=slow_swing)
    extra = None
    if beat:
        grids = [beat_grid(_SEEDS + 100 + i, options=options, attrs=a) for i, a in enumerate(attrs)]
        extra = [{"beat": {"bpm": bpm, "phase": -first * bpm / 60.0}} for bpm, first in grids]
    renders = render_audio(model, prompts, [_SEEDS + i for i in range(clips)], steps=steps, cfg_scale=cfg_scale,
                           extra=extra)
    if not corpus:
        return prompts, attrs, renders, None, None
    reference = make_clips([_SEEDS + 100 + i for i in range(clips)], attrs=attrs, options=options)
    n = renders.shape[1]
    with torch.no_grad():
        audio = torch.from_numpy(np.stack([np.pad(c.audio, (0, max(0, n - len(c.audio))))[:n] for c in reference]))
        round_trip = model.pretransform.decode(model.pretransform.encode(audio[:, None]))[:, 0].numpy()
    return prompts, attrs, renders, round_trip, reference


def tonal_part(model: tp.Any, *, clips: int, steps: int, cfg_scale: float, out: Path,
               log: tp.Callable[[str], None]) -> dict:
    from steerbridge.bridge.reports.pictures import sweep_grid
    from steerbridge.engine.demo.fluid import FluidSynthMissing, find_fluidsynth
    from steerbridge.engine.evaluation import transcription

    try:
        find_fluidsynth()
        if not transcription.available():
            raise transcription.BasicPitchMissing("basic-pitch is not installed (make install installs it)")
    except (FluidSynthMissing, transcription.BasicPitchMissing) as exc:
        return {"skipped": str(exc)}
    sr = model.sample_rate
    log(f"tonal clarity: {clips} held-out captions rendered and transcribed")
    # A beat-conditioned model is always given a BPM where it is played (the tempo knob), so it is judged so:
    # each render at the BPM and beat phase of the corpus clip it is compared with; without the beat reported.
    # The beat models were trained on the swung corpus (train --slow-swing), so their clips are swung too.
    beat = "beat" in model.conditioner.conditioners
    prompts, _, renders, round_trip, _ = held_out_renders(model, clips=clips, steps=steps, cfg_scale=cfg_scale,
                                                          beat=beat, slow_swing=beat)
    notes_render = [transcription.note_count(x, sr) for x in renders]
    notes_corpus = [transcription.note_count(x, sr) for x in round_trip]
    ratio = float(np.mean(notes_render) / max(1e-9, np.mean(notes_corpus)))
    no_beat = {}
    if beat:
        log("tonal clarity: the same captions without a beat")
        plain = held_out_renders(model, clips=clips, steps=steps, cfg_scale=cfg_scale, corpus=False)[2]
        counts = [transcription.note_count(x, sr) for x in plain]
        no_beat = {"no_beat": {"notes_render": counts, "mean_render": float(np.mean(counts)),
                               "ratio": float(np.mean(counts) / max(1e-9, np.mean(notes_corpus)))}}
    picture = sweep_grid([(f"render: {prompts[i][:28]}", renders[i]) for i in range(min(3, clips))]
                         + [(f"corpus clip {i + 1} (round trip)", round_trip[i]) for i in range(min(3, clips))],
                         sr, out / "tonal_spectrograms.png",
                         title="Model renders (left) vs corpus clips of the same attributes (right)")
    return {"prompts": prompts, "notes_render": notes_render, "notes_corpus": notes_corpus,
            "mean_render": float(np.mean(notes_render)), "mean_corpus": float(np.mean(notes_corpus)),
            "ratio": ratio, "pass": ratio >= TONAL["note_ratio"], "picture": picture.name, "beat": beat, **no_beat}
