"""The stable-audio-tools gateway: importable on a bare CPU torch, no leaked placeholders."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from steerbridge.engine.adapters import sat


def test_gateway_imports_and_leaves_no_placeholders():
    mods = sat.import_sat()
    assert {"factory", "sampling", "dit", "transformer"} <= set(mods)
    for name in sat.placeholders_used():
        assert name not in sys.modules
        assert importlib.util.find_spec(name) is None


def test_placeholder_call_raises_a_clear_error():
    if "torchaudio" not in sat.placeholders_used():
        pytest.skip("torchaudio is really installed here")
    gen = sys.modules.get("stable_audio_tools.inference.generation") or importlib.import_module(
        "stable_audio_tools.inference.generation")
    with pytest.raises(sat.MissingOptionalDependency, match="pip install torchaudio"):
        gen.T.Resample(48000, 44100)


def test_no_other_module_imports_stable_audio_tools():
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for pkg in ("engine", "bridge", "gui"):
        for path in (root / pkg).rglob("*.py"):
            if path.name == "sat.py" and path.parent.name == "adapters":
                continue
            text = path.read_text()
            if "import stable_audio_tools" in text or "from stable_audio_tools" in text:
                offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_imports_point_one_way():
    root = Path(__file__).resolve().parents[1]
    rules = {"engine": ("bridge", "gui", "PyQt6", "pythonosc", "mido", "sounddevice"), "bridge": ("gui", "PyQt6")}
    bad = []
    for pkg, banned in rules.items():
        for path in (root / pkg).rglob("*.py"):
            for line in path.read_text().splitlines():
                s = line.strip()
                if s.startswith(("import ", "from ")) and s.split()[1].split(".")[0] in banned:
                    bad.append(f"{path.relative_to(root)}: {s}")
    assert bad == []


def test_help_is_instant_without_torch():
    code = "import sys; from steerbridge.bridge.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
