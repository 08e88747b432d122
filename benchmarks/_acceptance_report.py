"""The demo acceptance report: model-card markdown and the headline lines (benchmarks/demo_acceptance.py)."""

from __future__ import annotations

import math
import typing as tp

from _entangle import MOOD as _MOOD, TEMPO as _TEMPO  # sibling module (benchmarks/ is on sys.path)

__all__ = ["markdown", "headlines", "entangle_markdown", "entangle_headlines"]



def clean(x: tp.Any) -> tp.Any:
    """JSON-safe: nan/inf become null (strict JSON has no NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    return [clean(v) for v in x] if isinstance(x, (list, tuple)) else x

def f(v: tp.Any, nd: int = 2, pct: bool = False) -> str:
    if v is None or isinstance(v, bool):
        return {None: "n/a", True: "pass", False: "FAIL"}[v]
    return f"{v:.0%}" if pct else f"{v:.{nd}f}"


def _gated(name: str, d: dict) -> str:
    return f"{name} (gating)" if d.get("gating") else name


def table(head: list[str], rows: list[list[tp.Any]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def markdown(r: dict) -> str:
    fo, st, sp = r["follow"], r["steering"], r["speed"]
    lines = [f"## Acceptance: {r['model']['source']} (fingerprint `{r['model']['fingerprint'][:16]}`)", "",
             f"Verdict: **{f(r['passed'])}** (gating: brightness, tempo, speed). `{r['command']}`", "",
             "### Prompt following (same-seed pairs differing in one attribute word)", ""]
    if "skipped" in fo:
        lines += [f"Skipped: {fo['skipped']}.", ""]
    else:
        lines += table(["contrast", "descriptor", "pairs", "moved", "effect size", "mean shift", "class gap",
                        "shift / gap", ""],
                       [[_gated(a, s), s["descriptor"], s["pairs"], f(s["moved"], pct=True), f(s["effect"]),
                         f(s["shift"], 3), f(s["gap"], 3), f(s["shift_over_gap"], pct=True), f(s["pass"])]
                        for a, s in fo["contrasts"].items()])
        lines += [(f"Pass: moved >= 85 %, effect >= 0.8, shift >= 1/3 of the gap (class gaps from "
                   f"{fo['gap_clips']} synthesised training-corpus clips)."), ""]
    rows = []
    for name, k in st["knobs"].items():
        if "rho_mean" not in k:
            rows.append([name, f"skipped: {k['skipped']}", "", "", "", "", ""])
            continue
        swap = k["prompt_swap_distance"]
        rows.append([_gated(name, k), k["descriptor"], f"{len(k['alphas'])} in [{k['alpha_min']:g}, {k['alpha_max']:g}]",
                     f(k["rho_mean"]), f(k["relative_shift"], pct=True),
                     f(max(k["max_distance"]) / swap if swap else None),
                     f(k["pass"]) + (f" ({', '.join(k['missed'])})" if k.get("missed") else "")])
    lines += ["### Steering with the shipped vectors (neutral prompts, same seed)", "",
              *table(["knob", "descriptor", "alphas", "mean Spearman rho", "relative shift",
                      "max distance / prompt swap", ""], rows or [["(no knobs)", "", "", "", "", "", ""]]),
              (f"Seed {st['seed']}, {st['seconds']:g} s renders. The {st['cutoff_rule']}. Pass (the demo model's "
               "targets, benchmarks/_targets.py): "
               "brightness and tempo rho >= 0.9 and relative shift >= 30 % (tempo: librosa's rho >= 0.9 too); "
               "mood rho >= 0.9 by the mode score and by basic-pitch, shift >= half the corpus' major-minor gap; "
               "instrument, drums, density rho >= 0.8; every render within the prompt-swap distance "
               "(ratio <= 1)."), "",
              "### Speed (torch, this CPU)", "",
              *table(["render", "steps", "CFG", "loop", "median render", "real-time factor"],
                     [[label, sp["steps"], f"{sp['cfg_scale']:g}", f"{sp['loop_s']:g} s",
                       f"{sp[label]['median_s']:.3f} s", f"{sp[label]['realtime_factor']:.1f}x"]
                      for label in ("unsteered", "steered") if label in sp]),
              (f"{f(sp['passed'])}: <= {r['thresholds']['speed']['max_render_s']:g} s per 4 s loop "
               f"({sp['threads']} torch threads, "
               f"load average {r['load_average']})."), ""]
    opinions = [[name, op, f(v["rho_mean"]), f(v["shift"], 3)] for name, k in st["knobs"].items()
                for op, v in k.get("second_opinions", {}).items()]
    if opinions:
        lines += ["Independent second opinions on the same renders (librosa tempo estimate, basic-pitch "
                  "major/minor from note posteriors):", "",
                  *table(["knob", "descriptor", "mean Spearman rho", "shift (max - min alpha)"], opinions)]
        gap = st["knobs"].get("mood", {}).get("shift_over_corpus_gap")
        lines += ([f"Mood shift as a fraction of the corpus' major-minor gap: {f(gap, pct=True)} "
                   "(target >= 50 %).", ""] if gap is not None else [""])
    tonal = r.get("tonal")
    if tonal:
        lines += ["### Tonal clarity (basic-pitch notes per 4 s clip)", ""]
        lines += ([f"Skipped: {tonal['skipped']}.", ""] if "skipped" in tonal else [
            f"Held-out captions: {f(tonal['mean_render'], 1)} notes per render vs {f(tonal['mean_corpus'], 1)} in "
            f"corpus clips of the same attributes after the codec round trip: ratio {f(tonal['ratio'], pct=True)} "
            f"(target >= 70 %): {f(tonal['pass'])}." + (
                f" Each render was given the BPM and beat phase of its corpus clip; the same captions without a "
                f"beat: {f(tonal['no_beat']['mean_render'], 1)} notes, {f(tonal['no_beat']['ratio'], pct=True)}."
                if "no_beat" in tonal else ""), "", f"![tonal clarity]({tonal['picture']})", ""])
    if "entangle" in r:
        lines += entangle_markdown(r["entangle"])
    for name, k in st["knobs"].items():
        if "pictures" in k:
            lines += [f"![{name} sweep]({k['pictures']['sweep']})", f"![{name} curve]({k['pictures']['curve']})", ""]
    return "\n".join(lines)


def headlines(r: dict) -> list[str]:
    out = [f"follow_{a}_{k}: {f(s[k], 3)}" for a, s in r["follow"].get("contrasts", {}).items()
           for k in ("moved", "effect", "shift_over_gap")]
    out += [f"steer_{name}_{label}: {f(k[key], 3) if key != 'all_within' else k[key]}"
            for name, k in r["steering"]["knobs"].items() if "rho_mean" in k
            for label, key in (("rho", "rho_mean"), ("relative_shift", "relative_shift"), ("all_within", "all_within"))]
    out += [f"steer_{name}_{op}_rho: {f(v['rho_mean'], 3)}" for name, k in r["steering"]["knobs"].items()
            for op, v in k.get("second_opinions", {}).items()]
    out += entangle_headlines(r.get("entangle", {}))
    if "ratio" in r.get("tonal", {}):
        out.append(f"tonal_note_ratio: {r['tonal']['ratio']:.3f}")
    return out + [f"speed_render_s: {r['speed']['render_s']:.3f}",
                  f"speed_realtime_factor: {r['speed']['realtime_factor']:.1f}", f"acceptance_pass: {r['passed']}"]


def entangle_markdown(e: dict) -> list[str]:
    """Part 4: the raw and the orthogonalised mood vector, their shifts and the acceptance ratios."""
    lines = ["### Entanglement: mood orthogonalised against tempo (reported, not gating)", ""]
    if "skipped" in e:
        return lines + [f"Skipped: {e['skipped']}.", ""]
    a, c = e["alphas"], e["coupling"]
    lines += [f"Coupled corpus: mood_tempo_coupling {c['mood_tempo_coupling']:g} ({c['source']}). Mood knob at "
              f"{len(a)} alphas in [{a[0]:g}, {a[-1]:g}], prompts {e['prompts']}, seeds {e['seeds']}, "
              f"{e['seconds']:g} s renders, other knobs at 0. Shifts: the mean over prompts and seeds at "
              f"alpha_max minus at alpha_min.",
              ""]
    rows, ratios = [], []
    for name, v in e["variants"].items():
        for kind, m in v["vectors"].items():
            same = " (= raw: no-op)" if v["noop"] and kind != "raw" else ""
            rows.append([name, kind + same, *(f"{m[d]['shift']:+.3f}" if m[d]["shift"] is not None else "n/a"
                                                for d in _MOOD + _TEMPO)])
        cos = ", ".join(f"L{l}: {f(x['cos_raw'])} -> {f(x['cos_applied'], 3)}" for l, x in v["layers"].items()
                        if x["cos_raw"] is not None) or "no shared layer"
        ratios.append([name, " / ".join(f(v["mood_kept"][d], pct=True) for d in _MOOD),
                       " / ".join(f(v["tempo_drift"][d], pct=True) for d in _TEMPO), cos, f(v["pass"])])
    lines += table(["variant", "mood vector", "mode score", "basic-pitch major/minor", "onset rate (/s)",
                    "librosa tempo (BPM)"], rows)
    lines += table(["variant", "mood shift kept (mode / basic-pitch)", "tempo drift vs raw (onset / librosa)",
                    "cos(mood, tempo) raw -> applied", ""], ratios)
    lines += [f"Pass: mood shift kept >= {e['thresholds']['mood_kept']:.0%} and tempo drift <= "
              f"{e['thresholds']['tempo_drift']:.0%} of the raw vector's, on both descriptors each. The verdict "
              f"is the preset variant's: **{f(e['pass'])}**.", ""]
    lines += [f"- {name}: {v['description']}." + (f" *{v['note']}.*" if "note" in v else "")
              for name, v in e["variants"].items()]
    return lines + ["", f"![entanglement]({e['picture']})", ""]


def entangle_headlines(e: dict) -> list[str]:
    out = []
    for name, v in e.get("variants", {}).items():
        out += [f"entangle_{name}_mood_kept_{d}: {f(v['mood_kept'][d], 3)}" for d in _MOOD]
        out += [f"entangle_{name}_tempo_drift_{d}: {f(v['tempo_drift'][d], 3)}" for d in _TEMPO]
    return out + ([f"entangle_pass: {e['pass']}"] if "variants" in e else [])
