"""The install: one `steerbridge` namespace in site-packages, presets as package data, a wheel that works alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from support.imports import PACKAGES

ROOT = Path(__file__).resolve().parents[1]


def _packages_on_disk() -> set[str]:
    found = set()
    for folder, name in PACKAGES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    return found


def test_pyproject_lists_every_package() -> None:
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(tool["packages"]) == _packages_on_disk()
    assert tool["package-dir"] == {name: folder for folder, name in PACKAGES.items()}


def test_shipped_presets_resolve_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from steerbridge.bridge.presets.model import load_preset
    from steerbridge.bridge.presets.shipped import resolve_preset, shipped_names

    monkeypatch.chdir(tmp_path)
    assert {"demo", "tiny"} <= set(shipped_names())
    demo = resolve_preset("demo")
    assert demo == resolve_preset("demo.toml") and demo.name == "demo.toml"
    assert load_preset(demo).model.source == "demo"
    (tmp_path / "demo.toml").write_text("# a local file wins over the shipped name\n")
    assert resolve_preset("demo.toml") == Path("demo.toml")
    with pytest.raises(FileNotFoundError, match="shipped: demo, tiny"):
        resolve_preset("no-such-preset")


def _source_tree(dest: Path) -> Path:
    """The files a clean clone has (git's list when there is one), copied to ``dest``."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, check=True).stdout
        files = [f for f in listed.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = [str(p.relative_to(ROOT)) for folder in (*PACKAGES, "README.md", "pyproject.toml")
                 for p in ([ROOT / folder] if (ROOT / folder).is_file() else (ROOT / folder).rglob("*"))
                 if p.is_file() and "__pycache__" not in p.parts]
    for rel in files:
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_renders_the_demo(tmp_path: Path) -> None:
    src = _source_tree(tmp_path / "src")
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(wheels), str(src)], check=True, timeout=300)
    (wheel,) = wheels.glob("steerbridge-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"steerbridge"}

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_ = venv / "bin"
    subprocess.run([bin_ / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", str(wheel)], check=True, timeout=300)
    # The dependencies (torch & co.) come from this test's environment, added as a plain path:
    # its editable-install hook (a .pth file) is not run, so steerbridge can only come from the wheel.
    site = Path(subprocess.run([bin_ / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"
    work = tmp_path / "elsewhere"  # outside the checkout: nothing can be found relative to it
    work.mkdir()
    where = subprocess.run([bin_ / "python", "-c", "import steerbridge.engine as e; print(e.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    shown = subprocess.run([bin_ / "python", "-m", "pip", "show", "-f", "steerbridge"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout
    files = [line.strip() for line in shown.split("Files:", 1)[1].splitlines() if line.strip()]
    assert files and not [f for f in files if f.split("/")[0] in ("engine", "bridge", "gui", "presets")]
    assert "steerbridge/presets/vectors/demo/brightness.safetensors" in files

    # Two renders, same seed, the brightness knob at both ends of its range: steered WAVs.
    out = subprocess.run([bin_ / "steerbridge", "render", "--preset", "demo", "--sweep", "brightness=0:1:2",
                          "--seconds", "1", "--out", "wavs", "--json"], cwd=work, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["model"] == "demo" and [f["value"] for f in result["files"]] == [0.0, 1.0]
    low, high = (work / f["path"] for f in result["files"])
    assert low.is_file() and high.is_file() and low.stat().st_size > 1000
    assert low.read_bytes() != high.read_bytes()
