"""A diffusers family's denoiser under torch.compile: steered output matches eager, knob moves compile nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("family", ["sao-diffusers", "ace-step", "sa3", "audioldm2"])
def test_compiled_family_steering_matches_eager_without_recompiles(family):
    script = Path(__file__).parent / "scripts" / "compile_family_check.py"
    proc = subprocess.run([sys.executable, str(script), family], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["compiled_graphs"] >= 1
    assert result["steering_changes_output"] > 1e-3
    assert result["max_compiled_vs_eager"] < 1e-4, result
    assert result["recompiles_after_alpha_or_vector_change"] == 0
