"""The steering benchmark: methods x {localized, all, ablated} x concepts x held-out prompts x alphas.

One run, side by side, on one resident model (TADA Sec. 5 on a small scale):

1. *Record.* For every concept, the positive and negative prompts (templates x
   extraction bases) are rendered once with per-frame recording at every
   cross-attention layer (engine/frames.py); CAA, AUSteer, SAE and the probes
   all read these activations.
2. *Localise.* Activation patching on the first counterfactual pairs gives the
   functional layers; probes on the recorded means give a second ranking.
3. *Vectors.* CAA (steerbridge.engine.extraction.caa), AUSteer (global top-k over the active
   layers) and SAE (one TopK SAE per layer, trained on the pooled frames of all
   concepts: diverse prompts and steps; TF-IDF features). "localized" = the
   functional layers, "all" = every layer, "ablated" = every layer but those.
   The prompt-blend baseline (engine/prompt_blend.py) has one variant.
4. *Evaluate.* Per held-out prompt: the alpha = 0 render, the prompt-swap
   renders that calibrate the shared cutoff, and the sweeps; AUC and smoothness
   per direction (engine/evaluate.py).
5. *Multi-concept* (``multi``). The localized CAA vectors steered in pairs and
   triples at the largest alpha, and mood orthogonalised against tempo
   (engine/multiconcept.py).

With a ``pool`` (e.g. Ray actors, :mod:`steerbridge.engine.cluster`), the patching pairs,
the CAA prompts and every evaluation render run there as independent tasks, gathered in
order, so the result is the one the local run gives; recording for AUSteer/SAE, SAE
training and the multi-concept part stay on the caller's model.

Activation alphas are in units of the site's mean activation norm
(``alpha_units="norm"``), so methods whose raw vectors differ in scale
(CAA mean differences, AUSteer's +-1 entries, unit SAE decoder columns) are
swept over comparable strengths. The prompt blend uses the same numbers as
multiples of the (positive - negative) text-embedding difference.
"""

from __future__ import annotations

import math
import time
import typing as tp
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from steerbridge.engine.cluster.pool import LocalPool, RenderPool
from steerbridge.engine.evaluation.concepts import EXTRACT_BASES, HELD_OUT_BASES, Concept, get_concept
from steerbridge.engine.evaluation.metrics import Curve, curve_auc, direction_curve, preservation_distance, smoothness
from steerbridge.engine.evaluation.multiconcept import MultiResult, from_bench
from steerbridge.engine.extraction.austeer import austeer_vector
from steerbridge.engine.extraction.caa import extract_caa
from steerbridge.engine.extraction.frames import SiteFrames, collect_site_frames
from steerbridge.engine.extraction.prompt_blend import render_blend
from steerbridge.engine.extraction.sae import sae_vector, train_layer_saes
from steerbridge.engine.localisation.patching import activation_patching
from steerbridge.engine.localisation.probes import probe_activations
from steerbridge.engine.runtime.errors import EngineError
from steerbridge.engine.runtime.render import RenderRequest
from steerbridge.engine.runtime.steering import Steering, SteeringTerm
from steerbridge.engine.runtime.vectors import ConceptVector
from steerbridge.engine.vocab import DEFAULT_CFG_SCALE, DEFAULT_SECONDS, DEFAULT_STEPS

__all__ = ["BenchConfig", "BenchRow", "BenchResult", "run_bench", "RenderItem", "render_item", "METHODS",
           "VARIANTS"]

METHODS = ("caa", "austeer", "sae", "prompt")
VARIANTS = ("localized", "all", "ablated")


@dataclass(frozen=True)
class BenchConfig:
    concepts: tuple[str, ...] = ("mood", "tempo", "brightness")
    methods: tuple[str, ...] = METHODS
    alphas: tuple[float, ...] = (0.5, 1.0, 2.0)  # magnitudes; each is swept with both signs
    extract_bases: tuple[str, ...] = EXTRACT_BASES
    eval_bases: tuple[str, ...] = HELD_OUT_BASES[:2]
    patch_pairs: int = 2
    seed: int = 0
    seconds: float = DEFAULT_SECONDS
    steps: int = DEFAULT_STEPS
    cfg_scale: float = DEFAULT_CFG_SCALE
    max_width: int = 2  # widest functional-layer window
    austeer_k: int | None = None  # default: d // 4 entries across the active layers
    sae_expansion: int = 4
    sae_k: int = 8
    sae_epochs: int = 20
    sae_batch: int = 256
    sae_top: int = 4
    max_frames: int | None = 256
    multi: bool = True  # pairs/triples of concepts + mood orthogonalised against tempo (needs "caa")

    @classmethod
    def quick(cls) -> "BenchConfig":
        """CI size: one concept, one held-out prompt, short clips, few steps."""
        return cls(concepts=("brightness",), alphas=(0.1, 0.3), extract_bases=EXTRACT_BASES[:1],
                   eval_bases=HELD_OUT_BASES[:1], patch_pairs=1, seconds=0.5, steps=3, sae_epochs=10,
                   sae_batch=64, max_frames=64)

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise EngineError(f"unknown bench method(s) {bad}; choose from {METHODS}")
        if not self.alphas or min(self.alphas) <= 0:
            raise EngineError(f"alphas are magnitudes > 0 (both signs are swept), got {self.alphas}")
        for c in self.concepts:
            get_concept(c)


@dataclass(frozen=True)
class BenchRow:
    concept: str
    method: str
    variant: str
    layers: tuple[int, ...]
    auc_pos: float
    auc_neg: float
    smooth_pos: float
    smooth_neg: float
    reach: float  # largest distance reached / cutoff (<1: the sweep never left the window)

    @property
    def auc(self) -> float:
        return (self.auc_pos + self.auc_neg) / 2

    @property
    def smoothness(self) -> float:
        vals = [v for v in (self.smooth_pos, self.smooth_neg) if not math.isnan(v)]
        return float(np.mean(vals)) if vals else math.nan

    def as_dict(self) -> dict[str, tp.Any]:
        return {**asdict(self), "auc": self.auc, "smoothness": self.smoothness}


@dataclass
class BenchResult:
    config: BenchConfig
    model: str
    fingerprint: str
    rows: list[BenchRow] = field(default_factory=list)
    localization: dict[str, dict[str, tp.Any]] = field(default_factory=dict)
    cutoffs: dict[str, dict[str, float]] = field(default_factory=dict)
    prompt_swap: dict[str, dict[str, float]] = field(default_factory=dict)  # alignment delta of the swap itself
    curves: dict[str, dict[str, list[Curve]]] = field(default_factory=dict)  # "concept/method/variant" -> dir
    sae_stats: dict[int, dict[str, float]] = field(default_factory=dict)
    saes: dict[int, tp.Any] = field(default_factory=dict)  # layer -> TopKSAE (shared by all concepts)
    vectors: dict[str, ConceptVector] = field(default_factory=dict)  # "concept/method/variant"
    multi: MultiResult | None = None  # None: config.multi off
    renders: int = 0
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, tp.Any]:
        """Per concept and method: does localized beat all-layers and ablated steering on AUC?"""
        out: dict[str, tp.Any] = {}
        for r in self.rows:
            if r.variant != "localized":
                continue
            others = {o.variant: o.auc for o in self.rows
                      if (o.concept, o.method) == (r.concept, r.method) and o.variant != "localized"}
            out[f"{r.concept}/{r.method}"] = {"localized": r.auc, **others,
                                              "beats_all": bool(r.auc > others.get("all", math.inf)),
                                              "beats_ablated": bool(r.auc > others.get("ablated", math.inf))}
        return out


def _layer_sets(functional: tuple[int, ...], n: int) -> dict[str, tuple[int, ...]]:
    everything = tuple(range(n))
    sets = {"localized": functional, "all": everything, "ablated": tuple(l for l in everything if l not in functional)}
    return {k: v for k, v in sets.items() if v}


def run_bench(model: tp.Any, config: BenchConfig, *, log: Callable[[str], None] | None = None,
              pool: RenderPool | None = None) -> BenchResult:
    """Run the whole comparison; ``log`` receives one line per stage; ``pool``: where renders run."""
    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    res = BenchResult(config=config, model=model.source, fingerprint=model.fingerprint)
    if model.handle.attached:
        model.handle.set(None)  # recordings must not include a previous render's steering
    n = model.num_layers
    layers = list(range(n))
    gen = dict(seed=config.seed, seconds=config.seconds, steps=config.steps, cfg_scale=config.cfg_scale)
    concepts = [get_concept(c) for c in config.concepts]

    frames: dict[str, tuple[SiteFrames, SiteFrames]] = {}
    for c in concepts:
        say(f"recording {c.name}: {len(c.prompts(config.extract_bases)[0])} prompt pairs")
        pos, neg = c.prompts(config.extract_bases)
        kw = dict(site="cross_attn", layers=layers, max_frames=config.max_frames, **gen)
        frames[c.name] = (collect_site_frames(model, pos, **kw), collect_site_frames(model, neg, **kw))
        res.renders += len(pos) + len(neg)

    saes = {}
    if "sae" in config.methods:
        say(f"training {n} SAEs (expansion {config.sae_expansion}, k {config.sae_k}, {config.sae_epochs} epochs)")
        trained = train_layer_saes([f for pair in frames.values() for f in pair], layers,
                                   expansion=config.sae_expansion, k=config.sae_k, epochs=config.sae_epochs,
                                   batch_size=config.sae_batch, seed=config.seed)
        saes = {l: sae for l, (sae, _) in trained.items()}
        res.sae_stats = {l: asdict(st) for l, (_, st) in trained.items()}
        res.saes = saes

    for c in concepts:
        pos, neg = frames[c.name]
        say(f"localising {c.name}: patching {config.patch_pairs} pair(s) x {n} layers")
        patch = activation_patching(model, concept=c.name, pairs=c.pairs(config.extract_bases)[:config.patch_pairs],
                                    score=c.score, max_width=config.max_width, seeds=(config.seed,),
                                    seconds=config.seconds, steps=config.steps, cfg_scale=config.cfg_scale,
                                    pool=pool)
        res.renders += config.patch_pairs * (2 + n)
        probes = probe_activations(pos.means, neg.means, concept=c.name, top_k=config.max_width, per_step=True)
        functional = patch.functional or probes.top  # no positive impact anywhere: fall back to the probes
        res.localization[c.name] = {"patching": patch.as_dict(), "probes": probes.as_dict(),
                                    "functional": list(functional),
                                    "source": "patching" if patch.functional else "probes"}
        vectors = _vectors(model, c, config, pos, neg, saes, functional, gen, pool)
        res.renders += (2 * len(pos.prompts)) if "caa" in config.methods else 0
        res.vectors.update({f"{c.name}/{k}": v for k, (v, _) in vectors.items()})
        _evaluate(pool or LocalPool(model), c, config, vectors, res, gen, say)
    if config.multi:  # one concept (quick): skipped with its reason, no renders
        res.multi = from_bench(model, res, log=say)
        res.renders += res.multi.renders
    res.elapsed_s = time.perf_counter() - t0
    return res


def _vectors(model: tp.Any, c: Concept, config: BenchConfig, pos: SiteFrames, neg: SiteFrames, saes: dict,
             functional: tuple[int, ...], gen: dict,
             pool: RenderPool | None) -> dict[str, tuple[ConceptVector, tuple[int, ...] | None]]:
    """``"method/variant" -> (vector, layers to steer or None for all the vector has)``."""
    out: dict[str, tuple[ConceptVector, tuple[int, ...] | None]] = {}
    sets = _layer_sets(functional, model.num_layers)
    if "caa" in config.methods:
        caa = extract_caa(model, positive=list(pos.prompts), negative=list(neg.prompts), concept=c.name, pool=pool,
                          **gen)
        for v, ls in sets.items():  # one extraction; each variant keeps only its layers (a file a preset can use)
            out[f"caa/{v}"] = (caa.with_tensors({l: caa.tensor(l) for l in ls}), None)
    if "austeer" in config.methods:
        for v, ls in sets.items():
            out[f"austeer/{v}"] = (austeer_vector(pos, neg, concept=c.name, fingerprint=model.fingerprint,
                                                  k=config.austeer_k, layers=ls), None)
    if "sae" in config.methods:
        for v, ls in sets.items():
            out[f"sae/{v}"] = (sae_vector({l: saes[l] for l in ls}, pos, neg, concept=c.name,
                                          fingerprint=model.fingerprint, top=config.sae_top), None)
    return out


@dataclass(frozen=True)
class RenderItem:
    """One evaluation render: plain, steered by ``vector`` at ``alpha``, or a prompt blend."""

    request: RenderRequest
    vector: ConceptVector | None = None
    layers: tuple[int, ...] | None = None
    alpha: float = 0.0
    blend: tuple[str, str] | None = None  # (positive, negative) prompts


def render_item(model: tp.Any, item: RenderItem) -> tuple[np.ndarray, int]:
    """A pool task: one evaluation render's audio and sample rate."""
    if item.blend is not None:
        r = render_blend(model, item.request, positive=item.blend[0], negative=item.blend[1], alpha=item.alpha)
    elif item.vector is not None:
        r = model.render(item.request, steering=Steering(terms=(SteeringTerm(item.vector, alpha=item.alpha,
                                                                             layers=item.layers),),
                                                         alpha_units="norm"))
    else:
        r = model.render(item.request)
    return r.audio, r.sample_rate


def _evaluate(pool: RenderPool, c: Concept, config: BenchConfig, vectors: dict, res: BenchResult, gen: dict,
              say: Callable[[str], None]) -> None:
    per_prompt: dict[str, dict[str, list[Curve]]] = {}
    cut: dict[str, list[float]] = {"pos": [], "neg": []}
    swap_delta: dict[str, list[float]] = {"pos": [], "neg": []}
    signed = [-a for a in sorted(config.alphas, reverse=True)] + sorted(config.alphas)
    keys = list(vectors) + (["prompt/prompt"] if "prompt" in config.methods else [])
    for base in config.eval_bases:
        say(f"evaluating {c.name} on '{base}': {len(keys)} sweeps x {len(signed)} alphas")
        req = RenderRequest(prompt=base, **gen)
        p_prompt, n_prompt = c.positive[0].format(base=base), c.negative[0].format(base=base)
        # Every render of this prompt at once (the pool may spread them); scored below, in order.
        items = [RenderItem(req), RenderItem(replace(req, prompt=p_prompt)),
                 RenderItem(replace(req, prompt=n_prompt))]
        for key in keys:
            items += [RenderItem(req, alpha=a, blend=(p_prompt, n_prompt)) if key == "prompt/prompt"
                      else RenderItem(req, vector=vectors[key][0], layers=vectors[key][1], alpha=a) for a in signed]
        audios = iter(pool.map(render_item, items))
        x0, x0_rate = next(audios)
        s0 = c.score(x0, x0_rate)
        for d in ("pos", "neg"):
            audio, rate = next(audios)
            cut[d].append(preservation_distance(audio, x0, rate))
            swap_delta[d].append((1 if d == "pos" else -1) * (c.score(audio, rate) - s0) / c.scale)
        res.renders += 3
        for key in keys:
            scores, dists = [], []
            for _ in signed:
                audio, rate = next(audios)
                scores.append(c.score(audio, rate))
                dists.append(preservation_distance(audio, x0, rate))
            res.renders += len(signed)
            half = len(signed) // 2
            slot = per_prompt.setdefault(key, {"pos": [], "neg": []})
            for d, sl, sign in (("neg", slice(0, half), -1), ("pos", slice(half, None), 1)):
                slot[d].append(direction_curve(signed[sl], scores[sl], dists[sl], baseline=s0, scale=c.scale,
                                               direction=sign))
    cutoff = {d: float(np.mean(v)) for d, v in cut.items()}
    res.cutoffs[c.name] = cutoff
    res.prompt_swap[c.name] = {d: float(np.mean(v)) for d, v in swap_delta.items()}
    for key, dirs in per_prompt.items():
        method, variant = key.split("/")
        res.curves[f"{c.name}/{key}"] = dirs

        def mean(f: Callable[[Curve, float], float], d: str) -> float:
            vals = [f(cv, cutoff[d]) for cv in dirs[d]]
            vals = [v for v in vals if not math.isnan(v)]
            return float(np.mean(vals)) if vals else math.nan

        reach = max(max(cv.distance) / cutoff[d] for d in dirs for cv in dirs[d]) if min(cutoff.values()) > 0 else 0
        layers = () if method == "prompt" else (vectors[key][1] or vectors[key][0].layers)
        res.rows.append(BenchRow(concept=c.name, method=method, variant=variant, layers=tuple(layers),
                                 auc_pos=mean(curve_auc, "pos"), auc_neg=mean(curve_auc, "neg"),
                                 smooth_pos=mean(smoothness, "pos"), smooth_neg=mean(smoothness, "neg"),
                                 reach=float(reach)))
