"""The entanglement part of the demo acceptance, alone: mood raw vs orthogonalised against tempo.

    .venv/bin/python benchmarks/demo_entanglement.py [--preset presets/demo.toml] [--out out/entangle]

The mood knob is swept over 7 alphas across its preset range (the acceptance's held-out seed and prompts),
raw and orthogonalised against the tempo knob's vector by the engine; per vector the mood shift (mode score,
basic-pitch major/minor) and the tempo drift (onset rate, librosa tempo) between the ends of the range.
Pass: the orthogonalised vector keeps >= 70 % of the raw mood shift with <= 10 % of the raw tempo drift.
When the two vectors share no layer the engine's orthogonalisation is a no-op; two variants that do share
layers are then measured too (benchmarks/_entangle.py says which). Writes entangle.json, entangle.md and
entangle.png into --out (plus the re-extracted vectors, if any, in entangle_vectors/); progress on stderr;
headline figures last, one per line, as ``name: value``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import demo_acceptance as acc  # noqa: E402  (sibling script: its renderer, descriptors and sweep)
from _acceptance_report import entangle_headlines, entangle_markdown  # noqa: E402

from steerbridge.engine.evaluation.concepts import HELD_OUT_BASES  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", type=Path, default=Path("presets/demo.toml"), help="preset with mood and tempo knobs")
    ap.add_argument("--source", help="model source overriding the preset's (demo, tiny or a model folder)")
    ap.add_argument("--out", type=Path, default=Path("out/entangle"), help="output folder")
    ap.add_argument("--prompts", nargs="+", default=list(HELD_OUT_BASES),
                    help="neutral prompts (default: the acceptance's held-out bases)")
    ap.add_argument("--seed", type=int, default=acc.HELD_OUT_SEED,
                    help=f"first seed (default {acc.HELD_OUT_SEED}, the acceptance's held-out seed)")
    ap.add_argument("--entangle-seeds", type=int, default=None, help="seeds, from --seed up (default 3; --quick: 1)")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of the renders")
    ap.add_argument("--alphas", type=int, default=7, help="alphas evenly across the mood knob's range")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's; --quick: 1)")
    ap.add_argument("--quick", action="store_true", help="smoke-run sizes: 2 prompts, 1 s renders, 1 thread")
    args = ap.parse_args(argv)
    if args.alphas < 2:
        ap.error(f"--alphas {args.alphas}: a sweep needs at least 2 alphas (the ends of the range)")
    if args.quick:
        args.prompts, args.seconds, args.threads = args.prompts[:2], 1.0, args.threads or 1
        args.entangle_seeds = args.entangle_seeds or 1
    args.prompts, args.entangle_seeds = tuple(args.prompts), args.entangle_seeds or 3
    args.command = shlex.join(["benchmarks/demo_entanglement.py", *(sys.argv[1:] if argv is None else argv)])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    t0, threads = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(args.threads or threads)
    try:
        preset, runner = acc.open_runner(args)
        part = acc.entangle(runner, preset, args)
    finally:
        torch.set_num_threads(threads)  # main() may run inside another process (the tests)
    m = runner.model
    result = acc.clean({"command": args.command, "preset": str(args.preset), "quick": args.quick,
                        "model": {"source": str(m.source), "fingerprint": m.fingerprint},
                        "settings": {k: getattr(preset.model, k) for k in ("steps", "cfg_scale", "cfg_mode",
                                                                           "alpha_units")},
                        "entangle": part, "elapsed_s": time.perf_counter() - t0})
    (args.out / "entangle.json").write_text(json.dumps(result, indent=1))
    head = [f"## Entanglement: {m.source} (fingerprint `{m.fingerprint[:16]}`)", "", f"`{args.command}`", ""]
    (args.out / "entangle.md").write_text("\n".join(head + entangle_markdown(result["entangle"])))
    acc.log(f"wrote {args.out / 'entangle.json'}, entangle.md and entangle.png in {result['elapsed_s']:.0f} s")
    print("\n".join(entangle_headlines(result["entangle"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
