"""The tempo knob of a beat-conditioned demo model: renders at seven BPMs, judged as the acceptance judges steering.

A model trained with ``train --beat`` takes its tempo as an input
(engine/demo/beat.py), so its tempo control is that input, not a steering
vector. Judged the way benchmarks/demo_acceptance.py judges a knob: the
held-out neutral prompts, one seed, 7 values across the range (here 70-160
BPM, the corpus' slow to fast), mean per-prompt Spearman rho of librosa's
tempo and of the onset rate, the relative shift of each between the ends,
and how often librosa's tempo is the asked BPM (within 8 %).
"""

from __future__ import annotations

import typing as tp

import numpy as np

from demo_acceptance import spearman

__all__ = ["BPMS", "bpm_sweep"]

BPMS = tuple(float(b) for b in np.linspace(70.0, 160.0, 7))


def bpm_sweep(model: tp.Any, *, prompts: tp.Sequence[str], seed: int, steps: int, cfg_scale: float) -> dict:
    from steerbridge.engine.demo.follow import render_audio
    from steerbridge.engine.evaluation.descriptors import describe
    from steerbridge.engine.evaluation.rhythm import librosa_tempo

    sr = model.sample_rate
    rows = {}
    for prompt in prompts:
        audio = render_audio(model, [prompt] * len(BPMS), [seed] * len(BPMS), steps=steps, cfg_scale=cfg_scale,
                             extra=[{"beat": b} for b in BPMS])
        tempo = [librosa_tempo(a, sr) for a in audio]
        onset = [describe(a, sr).onset_rate for a in audio]
        rows[prompt] = {"librosa_tempo": tempo, "onset_rate": onset,
                        "rho_librosa": spearman(BPMS, tempo), "rho_onset": spearman(BPMS, onset),
                        "shift_librosa": (tempo[-1] - tempo[0]) / max(tempo[0], 1e-9),
                        "shift_onset": (onset[-1] - onset[0]) / max(onset[0], 1e-9),
                        "exact_bpm": float(np.mean([abs(t / b - 1) < 0.08 for t, b in zip(tempo, BPMS)]))}
    mean = {k: float(np.nanmean([r[k] for r in rows.values()]))
            for k in ("rho_librosa", "rho_onset", "shift_librosa", "shift_onset", "exact_bpm")}
    return {"bpms": list(BPMS), "seed": seed, **mean, "prompts": rows}
