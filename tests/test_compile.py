"""Steering under ENABLE_TORCH_COMPILE=1, in a fresh process (upstream compiles at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_compiled_steering_matches_eager_without_recompiles():
    script = Path(__file__).parent / "scripts" / "compile_check.py"
    env = {**os.environ, "ENABLE_TORCH_COMPILE": "1"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["compiled_graphs"] >= 1  # the block forward really was compiled
    assert result["steering_changes_output"] > 1e-3  # the wrapper is inside the compiled region
    assert result["compiled_allclose_eager"], result  # rtol = atol = 1e-5
    assert result["recompiles_after_alpha_or_vector_change"] == 0
    assert result["detached_equals_plain"]
