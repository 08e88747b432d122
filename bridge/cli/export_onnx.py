"""`steerbridge export-onnx`: export a model's diffusion transformer for the onnxruntime backend."""

from __future__ import annotations

import argparse
from pathlib import Path

from steerbridge.bridge.cli.common import add_model_flags

__all__ = ["register"]

EPILOG = """examples:
  steerbridge export-onnx --model tiny
  steerbridge export-onnx --model demo --out exports/demo --json
  steerbridge export-onnx --model ~/models/stable-audio-open-small

The graph takes the steering offsets as inputs (one per site and layer), so
knob moves, vectors, layers and CFG modes never need a re-export; a changed
model does: the export records the model fingerprint and the onnx backend
refuses an export made for other weights. After exporting, the denoiser is run
in torch and onnxruntime side by side on short steered and unsteered renders;
the export is kept only if every step agrees within 1e-3.

Without --out the export goes to the model's default folder
(~/.cache/steerbridge/onnx/<model>, or $STEERBRIDGE_ONNX_DIR/<model>), where
the onnx backend looks for it."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-onnx", help="export the model's denoiser to ONNX (for --backend onnx)",
                       description="Export a model's diffusion transformer to ONNX with steering offsets as "
                                   "inputs, check parity against torch, record the model fingerprint.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(p)
    p.add_argument("--out", type=Path, help="output folder (default: the model's default export folder)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--seconds", type=float, default=4.0, help="example loop length traced (default: 4; the "
                                                                "graph accepts any length)")
    p.add_argument("--no-check", action="store_true", help="skip the torch/onnxruntime parity check")
    from steerbridge.bridge.cli.common import add_json_flag

    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    import warnings

    from steerbridge.bridge.cli.common import emit_json, fail
    from steerbridge.engine import EngineError, load_model

    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return fail(f"export-onnx needs the packages 'onnx' and 'onnxruntime' ({exc}); run `make install`")
    from steerbridge.engine.onnx.export import export_denoiser
    from steerbridge.engine.onnx.spec import default_export_dir

    try:
        model = load_model(args.model, family=args.family)
        out = args.out if args.out is not None else default_export_dir(model.source)
        if not args.json:
            print(f"exporting {model.source} ({model.fingerprint}) to {out} ...", file=sys.stderr)
        with warnings.catch_warnings():
            # The tracer warns about Python-side shape checks upstream; the parity check is the real test.
            warnings.simplefilter("ignore")
            result = export_denoiser(model, out, opset=args.opset, seconds=args.seconds, check=not args.no_check)
    except EngineError as exc:
        return fail(str(exc))
    spec = result.spec
    info = {"folder": str(result.folder.resolve()), "model": spec.source, "fingerprint": spec.fingerprint,
            "size_bytes": result.size_bytes, "export_s": round(result.export_s, 3), "opset": spec.opset,
            "inputs": len(spec.input_names()), "parity": spec.parity, "versions": spec.versions}
    if args.json:
        emit_json(info)
    else:
        print(f"{info['folder']}: {result.size_bytes / 1e6:.1f} MB, {info['inputs']} inputs, "
              f"{result.export_s:.1f} s")
        for name, value in spec.parity.items():
            print(f"  parity {name}: {value:.3g}")
        if not spec.parity:
            print("  parity not checked (--no-check)")
    return 0
