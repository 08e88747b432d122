"""Multi-concept steering (engine/multiconcept.py) on the tiny model: combinations, orthogonalisation, report."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from steerbridge.bridge.reports.benchplots import bench_markdown, retained_bars
from steerbridge.engine.evaluation.concepts import get_concept
from steerbridge.engine.evaluation.multiconcept import combo_steering, from_bench, multiconcept
from steerbridge.engine.runtime.render import RenderRequest
from steerbridge.engine.runtime.steering import Steering, SteeringTerm
from steerbridge.engine.runtime.vectors import ConceptVector, VectorMeta

GEN = {"seed": 3, "seconds": 0.5, "steps": 2, "cfg_scale": 6.0}
BASES = ("keys track",)
NORM = 0.8  # recorded site norm: the offset's length is alpha * NORM


def vec(model, concept, layers, seed, *, towards=None, mix=0.0):
    """Random direction per layer (a fraction ``mix`` of ``towards``'s at the same layer)."""
    g = torch.Generator().manual_seed(seed)
    d = model.site_dim("cross_attn")
    tensors = {}
    for l in layers:
        t = torch.randn(d, generator=g)
        tensors[l] = t if towards is None else (1 - mix) * t + mix * towards.tensor(l) * 3
    meta = VectorMeta(concept=concept, site="cross_attn", method="test", fingerprint=model.fingerprint,
                      site_norms={l: NORM for l in range(model.num_layers)})
    return ConceptVector(tensors, meta)


def three(model):
    """Localized-like vectors (tempo only at layer 3) and tempo's all-layer vector as the reference."""
    reference = vec(model, "tempo", (0, 1, 2, 3), 1)
    vectors = {"mood": vec(model, "mood", (1, 2), 2, towards=reference, mix=0.7),
               "tempo": reference.with_tensors({3: reference.tensor(3)}),
               "brightness": vec(model, "brightness", (2, 3), 3)}
    return vectors, reference


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Short clips gain nothing from threads, and on a busy machine two threads spin-wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def steered(tiny_model):
    """One 3-concept run at alpha 0.5, shared (every combination is 9 renders)."""
    vectors, reference = three(tiny_model)
    res = multiconcept(tiny_model, vectors, bases=BASES, alpha=0.5, tempo_reference=reference, **GEN)
    return vectors, reference, res


def test_single_combinations_equal_the_single_concept_render_bitwise(tiny, steered):
    vectors, _, res = steered
    assert [c.key for c in res.combos] == ["mood", "tempo", "brightness", "mood+tempo", "mood+brightness",
                                           "tempo+brightness", "mood+tempo+brightness"]
    assert res.renders == 1 + 7 + 1
    req = RenderRequest(prompt=BASES[0], **GEN)
    x0 = tiny.render(req)
    for combo in res.combos[:3]:
        (name,) = combo.steered
        # the bench's own single-concept steering (engine/bench.py _evaluate)
        single = tiny.render(req, steering=Steering(terms=(SteeringTerm(vectors[name], alpha=0.5, layers=None),),
                                                    alpha_units="norm"))
        ours = tiny.render(req, steering=combo_steering(vectors, combo.steered, 0.5))
        assert np.array_equal(single.audio, ours.audio)
        assert not np.array_equal(single.audio, x0.audio)  # the steering does something
        for n in vectors:
            c = get_concept(n)
            assert combo.shift[n] == (c.score(single.audio, single.sample_rate) - c.score(x0.audio, x0.sample_rate)) \
                / c.scale
        assert combo.alone == {name: combo.shift[name]} and set(combo.drift) == set(vectors) - {name}
        assert combo.drift == {n: abs(combo.shift[n]) for n in combo.drift}  # one prompt: |mean| = mean |.|
        assert combo.retained[name] == 1.0 or (combo.shift[name] == 0.0 and math.isnan(combo.retained[name]))
    pair = next(c for c in res.combos if c.key == "mood+tempo")
    assert pair.alone == {"mood": res.combos[0].shift["mood"], "tempo": res.combos[1].shift["tempo"]}
    together = tiny.render(req, steering=combo_steering(vectors, ("mood", "tempo"), 0.5))
    assert not np.array_equal(together.audio, tiny.render(req, steering=combo_steering(vectors, ("mood",), 0.5)).audio)
    assert pair.distance > 0


def test_alpha_zero_gives_exactly_zero_shift_everywhere(tiny):
    vectors, reference = three(tiny)
    res = multiconcept(tiny, vectors, bases=BASES, alpha=0.0, tempo_reference=reference, **GEN)
    assert len(res.combos) == 7
    for c in res.combos:
        assert set(c.shift.values()) == {0.0} and set(c.drift.values()) <= {0.0} and c.distance == 0.0
        assert all(math.isnan(r) for r in c.retained.values())  # nothing moved alone: no ratio
    o = res.ortho
    assert (o.tempo_drift_raw, o.tempo_drift_ortho, o.mood_shift_raw, o.mood_shift_ortho) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(o.drift_remaining)
    json.dumps(res.as_dict(), allow_nan=False)  # nan ratios come out as null


def test_orthogonalised_mood_is_orthogonal_to_tempo_in_what_is_applied(tiny, steered):
    vectors, reference, res = steered  # tempo's localized vector is not at mood's layers; the reference is
    o = res.ortho
    assert o.skipped is None and set(o.cosine) == set(o.cosine_applied) == {1, 2}
    assert all(o.cosine[l] > 0.5 for l in (1, 2))  # the test's mood leans on tempo...
    assert all(abs(o.cosine_applied[l]) < 1e-6 for l in (1, 2))  # ...the applied offset does not
    # what the wrappers really hold after an orthogonalised render
    tiny.render(RenderRequest(prompt=BASES[0], **GEN),
                steering=combo_steering(vectors, ("mood",), 0.5, against={"mood": (reference,)}))
    for l in (1, 2):
        off = tiny.handle.wrappers[("cross_attn", l)].offset[0].to(torch.float64)
        t = reference.tensor(l).to(torch.float64)
        assert abs(float(off @ t)) / (off.norm() * t.norm()) < 1e-6
        assert math.isclose(float(off.norm()), 0.5 * NORM, rel_tol=1e-5)  # norm units: length kept
    assert not tiny.handle.wrappers[("cross_attn", 0)].active
    assert o.mood_shift_raw == res.combos[0].shift["mood"]  # the raw run is the single-mood combination
    assert o.tempo_drift_raw == res.combos[0].drift["tempo"]
    # without a reference covering mood's layers, orthogonalisation has nothing to remove there
    bare = multiconcept(tiny, {"mood": vectors["mood"], "tempo": vectors["tempo"]}, bases=BASES, alpha=0.5, **GEN)
    assert all(math.isnan(v) for v in bare.ortho.cosine.values())
    assert bare.ortho.mood_shift_ortho == bare.ortho.mood_shift_raw
    assert "| 1 | — | — |" in bare.markdown()


def test_json_markdown_and_plot_cover_every_combination(steered, tmp_path):
    res = steered[2]
    d = json.loads(json.dumps(res.as_dict(), allow_nan=False))
    keys = [c.key for c in res.combos]
    assert list(d["combos"]) == keys and d["ortho"]["skipped"] is None and set(d["ortho"]["cosine"]) == {"1", "2"}
    assert d["combos"]["mood+tempo"]["retained"].keys() == {"mood", "tempo"}
    md = res.markdown()
    assert "| steered | mood | tempo | brightness | distance |" in md and "### Mood orthogonalised against tempo" in md
    for k in keys:
        assert f"| {k} | " in md
    png = retained_bars(d, tmp_path / "multi.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    summary = {"model": "tiny", "fingerprint": "x", "renders": 1, "elapsed_s": 1.0, "localization": {}, "rows": [],
               "verdicts": {}, "cutoffs": {}, "prompt_swap": {},
               "config": {"seconds": 0.5, "steps": 2, "cfg_scale": 6.0, "seed": 0, "alphas": [0.5]}}
    report = bench_markdown(summary, {"multi": "multi.png"}, sections=[md])
    assert report.index("## Multi-concept steering") < report.index("## Pictures")


def test_skipped_with_reasons(tiny, tmp_path):
    v = three(tiny)[0]
    no_tempo = multiconcept(tiny, {"mood": v["mood"], "brightness": v["brightness"]}, bases=BASES, alpha=0.5, **GEN)
    assert no_tempo.skipped is None and [c.key for c in no_tempo.combos] == ["mood", "brightness", "mood+brightness"]
    assert "tempo not among ['mood', 'brightness']" in no_tempo.ortho.skipped and no_tempo.renders == 1 + 3
    assert "*Skipped: needs the concepts mood and tempo" in no_tempo.markdown()
    retained_bars(no_tempo.as_dict(), tmp_path / "no_tempo.png")  # one panel only
    one = multiconcept(tiny, {"brightness": v["brightness"]}, bases=BASES, alpha=0.5, **GEN)
    assert one.renders == 0 and not one.combos and "at least two concepts" in one.skipped
    assert "mood and tempo not among" in one.ortho.skipped
    assert json.loads(json.dumps(one.as_dict()))["skipped"] == one.skipped
    cfg = SimpleNamespace(concepts=("mood", "tempo"), methods=("sae",), alphas=(0.5, 1.0), eval_bases=BASES)
    no_caa = from_bench(tiny, SimpleNamespace(config=cfg, vectors={}))
    assert "CAA" in no_caa.skipped and "CAA" in no_caa.ortho.skipped and no_caa.alpha == 1.0


def test_bench_cli_reports_multi(tmp_path, capsys):
    from steerbridge.bridge.cli import main

    code = main(["bench", "--model", "tiny", "--out", str(tmp_path), "--quick", "--concept", "mood", "--concept",
                 "tempo", "--method", "caa", "--alphas", "0.3", "--steps", "2", "--json"])
    assert code == 0
    multi = json.loads(capsys.readouterr().out)["multi"]
    assert list(multi["combos"]) == ["mood", "tempo", "mood+tempo"] and multi["alpha"] == 0.3
    loc = json.loads((tmp_path / "summary.json").read_text())["localization"]["mood"]["functional"]
    assert multi["ortho"]["skipped"] is None and [int(l) for l in multi["ortho"]["cosine"]] == loc
    assert all(abs(c) < 1e-6 for c in multi["ortho"]["cosine_applied"].values())
    assert "## Multi-concept steering" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "multi_retained.png").read_bytes()[:4] == b"\x89PNG"


def test_no_multi_flag_turns_it_off():
    import argparse

    from steerbridge.bridge.cli.bench import _config, register

    p = argparse.ArgumentParser()
    register(p.add_subparsers())
    assert _config(p.parse_args(["bench", "--out", "x", "--quick", "--no-multi"])).multi is False
    assert _config(p.parse_args(["bench", "--out", "x", "--quick"])).multi is True
