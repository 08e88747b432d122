"""Multi-concept steering: do concepts survive being steered together, and does orthogonalising help?

Two measurements, both at one strength (``alpha`` in units of the site's mean
activation norm; the bench uses its largest alpha) on held-out prompts. Every
render is compared with the alpha = 0 render of the same prompt and seed, and
every concept's descriptor is read from it, steered or not; shifts are in
concept units (raw descriptor change / ``Concept.scale``, steerbridge.engine.evaluation.concepts).

1. *Combinations.* Every single concept, pair and triple is steered at
   +alpha together (one term per concept, summed per layer by
   engine/steering.py). For a steered concept, *retained* = its shift together
   / its shift alone: below 1 the other offsets get in its way (they share
   layers and the residual stream), above 1 they push the same descriptor
   (tempo and drums both raise the onset rate). For an unsteered concept,
   *drift* = mean |shift| over prompts: the side effect of steering the others.
2. *Orthogonalisation.* Happy/sad vectors also carry energy (valence and
   arousal are entangled in training captions), so steering mood moves tempo.
   Mood is steered raw and with ``orthogonalize_against=(tempo,)`` (Gram-Schmidt
   per layer). In norm units the orthogonalised offset keeps the raw one's
   length, so only its direction differs. Reported: the tempo drift
   (|onset-rate change| / scale) of each, the mood shift each keeps, and per
   steered layer the cosine between mood and tempo, raw and in the offset that
   is actually applied. The tempo direction should cover mood's layers (the
   bench passes tempo's all-layer CAA vector): where it has none, mood is left
   as is and the cosine is reported as missing.
"""

from __future__ import annotations

import itertools
import math
import time
import typing as tp
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from steerbridge.engine.evaluation.concepts import get_concept
from steerbridge.engine.evaluation.metrics import preservation_distance
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.render import RenderRequest
from steerbridge.engine.runtime.steering import Steering, SteeringTerm, site_offsets
from steerbridge.engine.runtime.vectors import ConceptVector
from steerbridge.engine.vocab import DEFAULT_CFG_SCALE, DEFAULT_SECONDS, DEFAULT_STEPS

__all__ = ["Combo", "Ortho", "MultiResult", "combo_steering", "multiconcept", "from_bench"]

ORTHO = "mood+ortho(tempo)"  # run key of the orthogonalised mood render


def _num(x: float | None) -> float | None:
    """JSON-safe float: nan/inf -> None."""
    return None if x is None or not math.isfinite(x) else float(x)


def _ratio(a: float, b: float) -> float:
    return a / b if abs(b) > 1e-12 else math.nan


def _nums(d: Mapping[tp.Any, float]) -> dict[str, float | None]:
    return {str(k): _num(v) for k, v in d.items()}


@dataclass(frozen=True)
class Combo:
    """One set of concepts steered together."""

    steered: tuple[str, ...]
    shift: dict[str, float]  # every concept: mean signed shift vs alpha = 0 (concept units)
    drift: dict[str, float]  # unsteered concepts: mean |shift|
    alone: dict[str, float]  # steered concepts: their shift when steered alone
    distance: float  # mean preservation distance to the alpha = 0 render

    @property
    def key(self) -> str:
        return "+".join(self.steered)

    @property
    def retained(self) -> dict[str, float]:
        return {c: _ratio(self.shift[c], self.alone[c]) for c in self.steered}

    def as_dict(self) -> dict[str, tp.Any]:
        return {"steered": list(self.steered), "shift": _nums(self.shift), "retained": _nums(self.retained),
                "alone": _nums(self.alone), "drift": _nums(self.drift), "distance": _num(self.distance)}


@dataclass(frozen=True)
class Ortho:
    """Mood raw vs mood orthogonalised against tempo."""

    skipped: str | None = None
    cosine: dict[int, float] = field(default_factory=dict)  # raw mood vs tempo, per mood layer
    cosine_applied: dict[int, float] = field(default_factory=dict)  # applied (orthogonalised) offset vs tempo
    tempo_drift_raw: float = math.nan
    tempo_drift_ortho: float = math.nan
    mood_shift_raw: float = math.nan
    mood_shift_ortho: float = math.nan

    @property
    def drift_remaining(self) -> float:
        """Tempo drift left after orthogonalising, as a fraction of the raw vector's."""
        return _ratio(self.tempo_drift_ortho, self.tempo_drift_raw)

    @property
    def mood_kept(self) -> float:
        return _ratio(self.mood_shift_ortho, self.mood_shift_raw)

    def as_dict(self) -> dict[str, tp.Any]:
        return {"skipped": self.skipped, "cosine": _nums(self.cosine), "cosine_applied": _nums(self.cosine_applied),
                "tempo_drift_raw": _num(self.tempo_drift_raw), "tempo_drift_ortho": _num(self.tempo_drift_ortho),
                "mood_shift_raw": _num(self.mood_shift_raw), "mood_shift_ortho": _num(self.mood_shift_ortho),
                "drift_remaining": _num(self.drift_remaining), "mood_kept": _num(self.mood_kept)}


@dataclass
class MultiResult:
    concepts: tuple[str, ...]
    alpha: float
    bases: tuple[str, ...]
    combos: list[Combo] = field(default_factory=list)
    ortho: Ortho = field(default_factory=lambda: Ortho(skipped="not run"))
    skipped: str | None = None  # why no combinations were rendered
    renders: int = 0
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, tp.Any]:
        return {"concepts": list(self.concepts), "alpha": self.alpha, "bases": list(self.bases),
                "skipped": self.skipped, "combos": {c.key: c.as_dict() for c in self.combos},
                "ortho": self.ortho.as_dict(), "renders": self.renders, "elapsed_s": round(self.elapsed_s, 2)}

    def markdown(self) -> str:
        """The report section: a table of combinations, then the orthogonalisation comparison."""
        def f(v: float | None, sign: str = "+") -> str:
            return "—" if v is None or not math.isfinite(v) else f"{v:{sign}.3g}"

        out = ["## Multi-concept steering", "",
               f"Concept vectors (the bench's localized CAA) steered together at alpha +{self.alpha:g} (norm units) on "
               f"{list(self.bases)}. Cells: shift vs the alpha = 0 render in concept units; steered concepts in "
               "bold with *retained* = together / alone; unsteered concepts show their drift (mean |shift|). "
               "Distance: log-mel preservation distance.", ""]
        if self.skipped:
            out += [f"*Skipped: {self.skipped}.*", ""]
        else:
            out += ["| steered | " + " | ".join(self.concepts) + " | distance |",
                    "|---" * (len(self.concepts) + 2) + "|"]
            for c in self.combos:
                cells = [f"**{f(c.shift[n])}** (×{f(c.retained[n], '')})" if n in c.steered
                         else f"drift {f(c.drift[n], '')}" for n in self.concepts]
                out.append(f"| {c.key} | " + " | ".join(cells) + f" | {f(c.distance, '')} |")
            out.append("")
        o = self.ortho
        out += ["### Mood orthogonalised against tempo", ""]
        if o.skipped:
            return "\n".join(out + [f"*Skipped: {o.skipped}.*", ""])
        out += ["| mood vector | tempo drift (mean abs Δ onset rate / scale) | mood shift |", "|---|---|---|",
                f"| raw | {f(o.tempo_drift_raw, '')} | {f(o.mood_shift_raw)} |",
                f"| orthogonalised | {f(o.tempo_drift_ortho, '')} | {f(o.mood_shift_ortho)} |", "",
                f"Tempo drift remaining: {f(o.drift_remaining, '')}× the raw vector's; mood shift kept: "
                f"{f(o.mood_kept, '')}×.", "", "| layer | cos(mood, tempo) raw | cos applied after |", "|---|---|---|"]
        out += [f"| {l} | {f(o.cosine[l])} | {f(o.cosine_applied[l])} |" for l in o.cosine]
        return "\n".join(out) + "\n"


def combo_steering(vectors: Mapping[str, ConceptVector], names: Sequence[str], alpha: float, *,
                   against: Mapping[str, Sequence[ConceptVector]] | None = None) -> Steering:
    """``names`` steered together at ``alpha`` (norm units), each at every layer its vector has;
    ``against[name]``: vectors that concept is orthogonalised against."""
    against = against or {}
    return Steering(terms=tuple(SteeringTerm(vectors[n], alpha=alpha, orthogonalize_against=tuple(against.get(n, ())))
                                for n in names), alpha_units="norm")


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of two directions ([d] or [steps, d]; rows paired as steering pairs them, then averaged)."""
    a = a.to(torch.float64).reshape(-1, a.shape[-1])
    b = b.to(torch.float64).reshape(-1, b.shape[-1])
    n = max(len(a), len(b))
    a, b = (x[torch.arange(n).clamp(max=len(x) - 1)] for x in (a, b))
    return float(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean())


def _mean(xs: list[float]) -> float:
    return float(np.mean(xs)) if xs else math.nan


def multiconcept(model: tp.Any, vectors: Mapping[str, ConceptVector], *, bases: Sequence[str], alpha: float,
                 seed: int = 0, seconds: float = DEFAULT_SECONDS,
                 steps: int = DEFAULT_STEPS, cfg_scale: float = DEFAULT_CFG_SCALE,
                 tempo_reference: ConceptVector | None = None, max_size: int = 3,
                 log: Callable[[str], None] | None = None) -> MultiResult:
    """Steer every 1..``max_size`` subset of ``vectors`` (concept name -> vector) together, and mood
    raw vs orthogonalised against ``tempo_reference`` (default: ``vectors["tempo"]``)."""
    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    names = tuple(vectors)
    res = MultiResult(concepts=names, alpha=float(alpha), bases=tuple(bases))
    missing = [c for c in ("mood", "tempo") if c not in names]
    if missing:
        res.ortho = Ortho(skipped=f"needs the concepts mood and tempo; {' and '.join(missing)} not among {list(names)}")
    if len(names) < 2:
        res.skipped = f"needs at least two concepts, got {list(names)}"
        return res
    if not bases:
        raise EngineError("multi-concept steering needs at least one prompt")
    if not math.isfinite(alpha):
        raise EngineError(f"alpha must be finite, got {alpha}")
    concepts = {n: get_concept(n) for n in names}
    subsets = [s for k in range(1, min(max_size, len(names)) + 1) for s in itertools.combinations(names, k)]
    runs: dict[tp.Any, Steering] = {s: combo_steering(vectors, s, alpha) for s in subsets}
    ref = tempo_reference if tempo_reference is not None else vectors.get("tempo")
    if not missing:
        runs[ORTHO] = combo_steering(vectors, ("mood",), alpha, against={"mood": (ref,)})
    shifts: dict[tp.Any, dict[str, list[float]]] = {k: {n: [] for n in names} for k in runs}
    dists: dict[tp.Any, list[float]] = {k: [] for k in runs}
    for base in bases:
        say(f"multi-concept on '{base}': {len(runs)} combinations at alpha +{alpha:g}")
        req = RenderRequest(prompt=base, seed=seed, seconds=seconds, steps=steps, cfg_scale=cfg_scale)
        x0 = model.render(req)
        s0 = {n: c.score(x0.audio, x0.sample_rate) for n, c in concepts.items()}
        for key, steering in runs.items():
            r = model.render(req, steering=steering)
            for n, c in concepts.items():
                shifts[key][n].append((c.score(r.audio, r.sample_rate) - s0[n]) / c.scale)
            dists[key].append(preservation_distance(r.audio, x0.audio, r.sample_rate))
        res.renders += 1 + len(runs)
    alone = {n: _mean(shifts[(n,)][n]) for n in names}
    for s in subsets:
        res.combos.append(Combo(steered=s, shift={n: _mean(shifts[s][n]) for n in names},
                                drift={n: _mean([abs(x) for x in shifts[s][n]]) for n in names if n not in s},
                                alone={n: alone[n] for n in s}, distance=_mean(dists[s])))
    if not missing:
        res.ortho = _ortho(model, vectors["mood"], ref, shifts[("mood",)], shifts[ORTHO])
    res.elapsed_s = time.perf_counter() - t0
    return res


def _ortho(model: tp.Any, mood: ConceptVector, tempo: ConceptVector, raw: dict[str, list[float]],
           ortho: dict[str, list[float]]) -> Ortho:
    # The direction actually applied: the offsets the wrappers receive (alpha 1, so alpha 0 still has one).
    applied = site_offsets(combo_steering({"mood": mood}, ("mood",), 1.0, against={"mood": (tempo,)}),
                           site=mood.site, num_layers=model.num_layers,
                           dim=[model.site_dim(mood.site, l) for l in range(model.num_layers)])
    has = lambda l: l in tempo.tensors and tempo.site == mood.site
    return Ortho(cosine={l: _cos(mood.tensor(l), tempo.tensor(l)) if has(l) else math.nan for l in mood.layers},
                 cosine_applied={l: _cos(applied[l], tempo.tensor(l)) if has(l) else math.nan for l in mood.layers},
                 tempo_drift_raw=_mean([abs(x) for x in raw["tempo"]]),
                 tempo_drift_ortho=_mean([abs(x) for x in ortho["tempo"]]),
                 mood_shift_raw=_mean(raw["mood"]), mood_shift_ortho=_mean(ortho["mood"]))


def from_bench(model: tp.Any, bench: tp.Any, *, log: Callable[[str], None] | None = None) -> MultiResult:
    """Run on a finished bench (engine/bench.py ``BenchResult``): its localized CAA vectors, held-out
    prompts, seed and clip settings, its largest alpha; tempo's all-layer CAA vector as the reference."""
    cfg = bench.config
    names, alpha = tuple(cfg.concepts), max(cfg.alphas)
    if "caa" not in cfg.methods:
        why = "needs the bench's CAA vectors (method 'caa')"
        return MultiResult(concepts=names, alpha=alpha, bases=tuple(cfg.eval_bases), skipped=why, ortho=Ortho(why))
    vectors = {n: bench.vectors[f"{n}/caa/localized"] for n in names}
    return multiconcept(model, vectors, bases=cfg.eval_bases, alpha=alpha, seed=cfg.seed, seconds=cfg.seconds,
                        steps=cfg.steps, cfg_scale=cfg.cfg_scale, tempo_reference=bench.vectors.get("tempo/caa/all"),
                        log=log)
