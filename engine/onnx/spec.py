"""The ONNX export's contract: file names, the spec written beside the graph, where exports live.

torch-free, so the runtime, the exporter and the parity check can all read it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from steerbridge.engine.runtime.errors import EngineError

__all__ = ["OnnxSpec", "OnnxExportError", "read_spec", "default_export_dir", "GRAPH_FILE", "SPEC_FILE",
           "COND_NAMES", "IGNORED_INPUTS", "FORMAT_VERSION", "PARITY_TOL"]

PARITY_TOL = 1e-3  # max abs difference of the denoiser output per step (after CFG)
GRAPH_FILE = "denoiser.onnx"
SPEC_FILE = "export.json"
FORMAT_VERSION = 1
# ``_forward`` keyword inputs that carry conditioning into the transformer. Masks
# are not among them: DiffusionTransformer drops cross-attention masks and the
# continuous transformer never receives the others (upstream 0.0.19).
COND_NAMES = ("cross_attn_cond", "global_embed", "prepend_cond", "input_concat_cond")
IGNORED_INPUTS = ("mask", "cross_attn_cond_mask", "prepend_cond_mask", "return_info", "exit_layer_ix")


class OnnxExportError(EngineError):
    """An ONNX export is missing, unreadable, or made for another model."""


@dataclass(frozen=True)
class OnnxSpec:
    """What ``denoiser.onnx`` expects, and for which model it was made."""

    fingerprint: str
    source: str
    conds: tuple[str, ...]
    sites: tuple[tuple[str, int], ...]  # (site, layer) per offset input, in input order
    dim: int
    opset: int
    versions: dict[str, str] = field(default_factory=dict)
    parity: dict[str, float] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @staticmethod
    def offset_name(site: str, layer: int) -> str:
        return f"offset.{site}.{layer}"

    def input_names(self) -> list[str]:
        return ["x", "t", *self.conds, *(self.offset_name(s, l) for s, l in self.sites)]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "OnnxSpec":
        raw = json.loads(text)
        raw["conds"] = tuple(raw["conds"])
        raw["sites"] = tuple((str(s), int(l)) for s, l in raw["sites"])
        return cls(**raw)


def default_export_dir(source: str) -> Path:
    """Where a model's export lives unless told otherwise: one folder per model *source*.

    Keyed by source, not fingerprint, on purpose: after the demo model is
    retrained its old export is found and refused as stale (with the command
    to re-export) instead of silently ignored. ``STEERBRIDGE_ONNX_DIR`` moves
    the base folder (default ``~/.cache/steerbridge/onnx``).
    """
    import hashlib

    base = Path(os.environ.get("STEERBRIDGE_ONNX_DIR") or Path.home() / ".cache" / "steerbridge" / "onnx")
    if source in ("tiny", "demo"):
        return base / source
    path = str(Path(source).expanduser().resolve())
    return base / f"{Path(path).name}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"


def read_spec(folder: str | os.PathLike[str], *, fingerprint: str | None = None) -> OnnxSpec:
    """The export's spec; refuses (OnnxExportError) a missing, old-format or stale export."""
    folder = Path(folder)
    spec_path, graph = folder / SPEC_FILE, folder / GRAPH_FILE
    if not spec_path.is_file() or not graph.is_file():
        raise OnnxExportError(f"no ONNX export in {folder} (needs {GRAPH_FILE} + {SPEC_FILE}); "
                              "create one with `steerbridge export-onnx --model MODEL [--out DIR]`")
    try:
        spec = OnnxSpec.from_json(spec_path.read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise OnnxExportError(f"{spec_path} is not a steerbridge ONNX spec ({exc!r}); re-export the model") from exc
    if spec.format_version != FORMAT_VERSION:
        raise OnnxExportError(f"{folder} holds an ONNX export of format {spec.format_version}, this steerbridge "
                              f"reads format {FORMAT_VERSION}; re-run `steerbridge export-onnx`")
    if fingerprint is not None and spec.fingerprint != fingerprint:
        raise OnnxExportError(
            f"the ONNX export in {folder} was made for model {spec.fingerprint} ({spec.source}), but the loaded "
            f"model is {fingerprint}: the weights or config changed since. Re-run `steerbridge export-onnx "
            f"--model {spec.source} --out {folder}`")
    return spec


