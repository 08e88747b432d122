"""The demo model's acceptance targets (prompt following, steering per knob, speed) and the steering judge."""

from __future__ import annotations

import math
import typing as tp

__all__ = ["FOLLOW", "GATING", "STEER", "STEER_TARGETS", "SPEED", "missed_targets"]

GATING = ("brightness", "tempo")  # the knobs (and contrasts) that gate the acceptance verdict, with speed
FOLLOW = {"moved": 0.85, "effect": 0.8, "shift_over_gap": 1 / 3}
STEER = {"rho": 0.9, "relative_shift": 0.30}  # a knob the demo model's targets do not name
# the demo model's targets per knob (every render within the prompt-swap distance, always): rho >= 0.9 and >= 30 %
# shift for brightness and tempo (tempo: by librosa's estimate too); mood rho >= 0.9 by the mode score and by
# basic-pitch, shifting at least half the corpus' major-minor gap; rho >= 0.8 for instrument, drums, density
STEER_TARGETS: dict[str, dict[str, float]] = {
    "brightness": STEER,
    "tempo": {**STEER, "second_rho": 0.9},
    "mood": {"rho": 0.9, "second_rho": 0.9, "shift_over_corpus_gap": 0.5},
    "instrument": {"rho": 0.8}, "drums": {"rho": 0.8}, "density": {"rho": 0.8},
}
SPEED = {"seconds": 4.0, "max_render_s": 0.35}  # a 4 s loop in <= 0.35 s on the 2-core CPU


def missed_targets(res: dict) -> list[str]:
    """The knob's targets it misses (a measure that could not be taken counts as missed)."""
    def below(value: tp.Any, least: float) -> bool:
        return not (isinstance(value, float) and math.isfinite(value) and value >= least)

    t, missed = res["targets"], []
    if below(res["rho_mean"], t["rho"]):
        missed.append("rho")
    if "relative_shift" in t and below(res["relative_shift"], t["relative_shift"]):
        missed.append("shift")
    if "second_rho" in t and (not res["second_opinions"] or any(
            below(o["rho_mean"], t["second_rho"]) for o in res["second_opinions"].values())):
        missed.append("second opinion rho")
    if "shift_over_corpus_gap" in t and below(res.get("shift_over_corpus_gap"), t["shift_over_corpus_gap"]):
        missed.append("half the corpus gap")
    if not res["all_within"]:
        missed.append("distance")
    return missed
