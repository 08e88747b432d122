"""Pictures and the markdown report for `steerbridge localize` and `steerbridge bench`.

Plain data in (dicts and lists from the engine's results), PNG and markdown
out; matplotlib's Agg backend, so no display is needed.
"""

from __future__ import annotations

import math
import typing as tp
from pathlib import Path

__all__ = ["impact_heatmap", "curve_grid", "retained_bars", "bench_markdown"]


def _plt() -> tp.Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def impact_heatmap(rows: dict[str, list[float]], layers: list[int], path: Path, *, title: str,
                   functional: dict[str, list[int]] | None = None) -> Path:
    """Concepts x layers heat map of patching impact (or probe accuracy); functional layers boxed."""
    import numpy as np

    plt = _plt()
    names = list(rows)
    data = np.array([[v if v is not None and not math.isnan(v) else np.nan for v in rows[n]] for n in names])
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(layers), 1.2 + 0.5 * len(names)))
    lim = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
    im = ax.imshow(data, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(layers)), [str(l) for l in layers])
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("cross-attention layer")
    for i, n in enumerate(names):
        for l in (functional or {}).get(n, []):
            ax.add_patch(plt.Rectangle((layers.index(l) - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="black"))
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curve_grid(curves: dict[str, dict[str, list[tp.Any]]], cutoffs: dict[str, float], path: Path, *,
               title: str) -> Path:
    """Alignment (y) over preservation distance (x) per direction; one line per method/variant (prompt mean)."""
    import numpy as np

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), squeeze=False)
    for ax, d in zip(axes[0], ("pos", "neg")):
        for label, dirs in curves.items():
            cs = dirs[d]
            x = np.mean([c.distance for c in cs], axis=0)
            y = np.mean([c.delta for c in cs], axis=0)
            style = "--" if label.endswith("/all") else (":" if label.endswith("/ablated") else "-")
            ax.plot(x, y, style, marker="o", ms=3, label=label)
        ax.axvline(cutoffs[d], color="grey", lw=1)
        ax.axhline(0.0, color="grey", lw=0.5)
        ax.set_xlabel("preservation distance to alpha=0 (log-mel)")
        ax.set_ylabel("alignment gain (concept units)")
        ax.set_title(f"{'positive' if d == 'pos' else 'negative'} direction (cutoff {cutoffs[d]:.3g})", fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def retained_bars(multi: dict[str, tp.Any], path: Path) -> Path:
    """Retained alignment (together / alone) per combination of two or more concepts, one bar per
    steered concept; beside it, mood raw vs orthogonalised against tempo (when measured)."""
    plt = _plt()
    combos = [c for c in multi["combos"].values() if len(c["steered"]) > 1]
    ortho = multi["ortho"]
    fig, axes = plt.subplots(1, 1 if ortho["skipped"] else 2, figsize=(11, 4.2), squeeze=False,
                             gridspec_kw={"width_ratios": [3] if ortho["skipped"] else [3, 1]})
    ax, colors = axes[0][0], {n: f"C{i}" for i, n in enumerate(multi["concepts"])}
    width = 0.8 / max(1, max((len(c["steered"]) for c in combos), default=1))
    for i, c in enumerate(combos):
        for j, n in enumerate(c["steered"]):
            x, v = i + (j - (len(c["steered"]) - 1) / 2) * width, c["retained"][n]
            ax.bar(x, 0.0 if v is None else v, width, color=colors[n],
                   label=n if n not in ax.get_legend_handles_labels()[1] else None)
            if v is None:  # the concept did not move alone: no ratio
                ax.text(x, 0.0, "n/a", ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="grey", lw=1)
    ax.set_xlim(-0.6, len(combos) - 0.4)
    ax.set_xticks(range(len(combos)), ["+".join(c["steered"]) for c in combos], fontsize=8)
    ax.set_ylabel("retained alignment (together / alone)")
    ax.set_title(f"concepts steered together at alpha +{multi['alpha']:g}", fontsize=9)
    ax.legend(fontsize=7)
    if not ortho["skipped"]:
        ax2 = axes[0][1]
        vals = [ortho[k] for k in ("tempo_drift_raw", "tempo_drift_ortho", "mood_shift_raw", "mood_shift_ortho")]
        ax2.bar(range(4), [0.0 if v is None else v for v in vals], color=["C3", "C2", "C3", "C2"])
        ax2.axhline(0.0, color="grey", lw=0.5)
        ax2.set_xticks(range(4), ["tempo\ndrift\nraw", "tempo\ndrift\northo", "mood\nshift\nraw",
                                  "mood\nshift\northo"], fontsize=7)
        ax2.set_title("mood raw vs orthogonalised\nagainst tempo", fontsize=9)
        ax2.set_ylabel("concept units")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _f(v: float | None, nd: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{nd}g}"


def bench_markdown(summary: dict[str, tp.Any], pictures: dict[str, str], *, sections: tp.Sequence[str] = ()) -> str:
    """The report: settings, localisation, the main table, the verdicts, SAE health, ``sections``
    (ready-made markdown, e.g. the multi-concept one), pictures."""
    cfg = summary["config"]
    out = [f"# steerbridge bench — model `{summary['model']}`", "",
           f"fingerprint `{summary['fingerprint']}`, {summary['renders']} renders in {summary['elapsed_s']:.1f} s. "
           f"Clips {cfg['seconds']} s, {cfg['steps']} steps, cfg {cfg['cfg_scale']}, seed {cfg['seed']}; "
           f"alphas ±{list(cfg['alphas'])} (activation methods: units of the site's mean norm).", "",
           "AUC: area under alignment gain (concept units) over log-mel preservation distance, up to the "
           "prompt-swap cutoff (higher is better). Smoothness: std of normalised consecutive gaps (lower is "
           "better; — where the sweep never moved the concept forward inside the cutoff). Reach: largest "
           "distance / cutoff.", "", "## Localisation", "",
           "| concept | patching impact per layer | functional | probe accuracy per layer | probe top | agree |",
           "|---|---|---|---|---|---|"]
    for name, loc in summary["localization"].items():
        imp = ", ".join(_f(v, 2) for v in loc["patching"]["impact"])
        acc = ", ".join(_f(v, 2) for v in loc["probes"]["accuracy"])
        agree = bool(set(loc["functional"]) & set(loc["probes"]["top"]))
        out.append(f"| {name} | {imp} | {loc['functional']} ({loc['source']}) | {acc} | {loc['probes']['top']} "
                   f"| {'yes' if agree else 'no'} |")
    out += ["", "## Steering", "", "| concept | method | variant | layers | AUC + | AUC − | AUC | smooth + | "
            "smooth − | reach |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        out.append(f"| {r['concept']} | {r['method']} | {r['variant']} | {list(r['layers'])} | {_f(r['auc_pos'])} | "
                   f"{_f(r['auc_neg'])} | {_f(r['auc'])} | {_f(r['smooth_pos'], 3)} | {_f(r['smooth_neg'], 3)} | "
                   f"{_f(r['reach'], 3)} |")
    out += ["", "## Does localized steering win? (TADA's claim, reported either way)", "",
            "| concept/method | localized | all | ablated | beats all | beats ablated |", "|---|---|---|---|---|---|"]
    for key, v in summary["verdicts"].items():
        out.append(f"| {key} | {_f(v['localized'])} | {_f(v.get('all'))} | {_f(v.get('ablated'))} | "
                   f"{'yes' if v['beats_all'] else 'no'} | {'yes' if v['beats_ablated'] else 'no'} |")
    out += ["", "Prompt-swap calibration (distance = cutoff; delta = the swap's own alignment gain):", "",
            "| concept | cutoff + | cutoff − | swap delta + | swap delta − |", "|---|---|---|---|---|"]
    for name, cut in summary["cutoffs"].items():
        sw = summary["prompt_swap"][name]
        out.append(f"| {name} | {_f(cut['pos'])} | {_f(cut['neg'])} | {_f(sw['pos'])} | {_f(sw['neg'])} |")
    if summary.get("sae_stats"):
        out += ["", "## SAE health", "", "| layer | FVU | dead | dense | samples |", "|---|---|---|---|---|"]
        for l, st in summary["sae_stats"].items():
            out.append(f"| {l} | {_f(st['fvu'], 3)} | {st['dead_fraction']:.1%} | {st['dense_fraction']:.1%} | "
                       f"{st['samples']} |")
    out += [""] + [s.rstrip("\n") + "\n" for s in sections]
    out += ["## Pictures", ""] + [f"![{k}]({v})" for k, v in pictures.items()]
    return "\n".join(out) + "\n"
