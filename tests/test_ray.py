"""Sweeps on Ray: `bench --quick --ray` and `extract --ray` give exactly the local results.

Offline, on a local Ray instance (num_cpus=2, two actors with the tiny model each). Ray is
an optional extra: without it these tests skip with the install command, except where
STEERBRIDGE_REQUIRE_RAY=1 (CI installs the extra and sets it) turns the skip into a failure.
Without Ray, `--ray` must say how to install it and the commands must work without the flag.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

RAY = importlib.util.find_spec("ray") is not None


def need_ray() -> None:
    if not RAY:
        if os.environ.get("STEERBRIDGE_REQUIRE_RAY") == "1":
            pytest.fail("STEERBRIDGE_REQUIRE_RAY=1 but Ray is not installed: pip install -e '.[ray]'")
        pytest.skip("Ray is not installed (pip install -e '.[ray]')")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "steerbridge.bridge", *args], capture_output=True, text=True,
                          env=env, timeout=900)


def _vectors(folder: Path) -> dict[str, dict]:
    from steerbridge.engine import load_vector

    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        vec = load_vector(path)
        out[path.name] = {"tensors": {l: vec.tensor(l) for l in vec.layers}, "norms": vec.meta.site_norms,
                          "layers": vec.layers}
    return out


def _same_vectors(a: dict[str, dict], b: dict[str, dict]) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        assert a[name]["layers"] == b[name]["layers"] and a[name]["norms"] == b[name]["norms"], name
        for layer, t in a[name]["tensors"].items():
            assert torch.equal(t, b[name]["tensors"][layer]), f"{name} layer {layer} differs"


@pytest.mark.slow
@pytest.mark.timeout(1500)  # two CLI runs that import torch and start Ray: minutes on a loaded machine
def test_bench_quick_on_ray_gives_the_local_results(tmp_path) -> None:
    need_ray()
    local = cli("bench", "--quick", "--out", str(tmp_path / "local"), "--json")
    assert local.returncode == 0, local.stderr[-3000:]
    remote = cli("bench", "--quick", "--out", str(tmp_path / "ray"), "--ray", "--ray-actors", "2", "--json")
    assert remote.returncode == 0, remote.stderr[-3000:]
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    timing = {"elapsed_s", "total_s", "report", "pictures"}
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    assert a["rows"] and a["renders"] == b["renders"] > 0
    _same_vectors(_vectors(tmp_path / "local" / "vectors"), _vectors(tmp_path / "ray" / "vectors"))


@pytest.mark.slow
@pytest.mark.timeout(1500)  # two CLI runs that import torch and start Ray: minutes on a loaded machine
def test_extract_on_ray_gives_the_local_vector(tmp_path) -> None:
    need_ray()
    common = ["extract", "--model", "tiny", "--concept", "mood", "--positive", "happy song, {base}",
              "--negative", "sad song, {base}", "--base", "piano loop", "--base", "synth pad", "--base", "drum groove",
              "--seconds", "0.5", "--steps", "3", "--json"]
    local = cli(*common, "--out", str(tmp_path / "local" / "mood.safetensors"))
    assert local.returncode == 0, local.stderr[-3000:]
    remote = cli(*common, "--out", str(tmp_path / "ray" / "mood.safetensors"), "--ray")
    assert remote.returncode == 0, remote.stderr[-3000:]
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert {k: v for k, v in a.items() if k != "path"} == {k: v for k, v in b.items() if k != "path"}
    _same_vectors(_vectors(tmp_path / "local"), _vectors(tmp_path / "ray"))


@pytest.mark.timeout(900)
def test_without_ray_the_flag_says_how_to_install_it(tmp_path) -> None:
    # A `ray` package that fails to import stands in for an installation without the extra.
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named ray (simulated)')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])}
    never = tmp_path / "never"
    for command in (["extract", "--concept", "mood", "--positive", "a", "--negative", "b", "--out",
                     str(never / "x.safetensors")],
                    ["localize", "--concept", "mood", "--out", str(never / "x.json")],
                    ["bench", "--quick", "--out", str(never)]):
        out = cli(*command, "--ray", env=env)
        assert out.returncode == 2, out.stderr
        assert "pip install 'steerbridge[ray]'" in out.stderr and "Traceback" not in out.stderr
    assert not never.exists()
