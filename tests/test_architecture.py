"""The layout's rules, read from the source with ast: import direction, one import path, no cycles."""

from __future__ import annotations

import textwrap
from pathlib import Path

from support.imports import PACKAGES, bare_imports, cycles, direction_violations, module_name, scan

ROOT = Path(__file__).resolve().parents[1]
CODE = tuple(PACKAGES)
EVERYWHERE = (*CODE, "tests", "benchmarks", "tools")


def _modules(root: Path) -> set[str]:
    return {m for folder in CODE if (root / folder).is_dir()
            for m in (module_name(p, root) for p in (root / folder).rglob("*.py")) if m}


def test_imports_point_one_way() -> None:
    assert direction_violations(scan(ROOT, CODE)) == []


def test_one_import_path_only() -> None:
    # Code, tests, benchmarks and tools all import steerbridge.*: no module can load twice under two names.
    assert bare_imports(scan(ROOT, EVERYWHERE)) == []


def test_no_import_cycles() -> None:
    assert cycles(scan(ROOT, CODE), _modules(ROOT)) == []


def test_the_checker_catches_planted_violations(tmp_path: Path) -> None:
    def plant(rel: str, text: str) -> None:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))

    plant("engine/__init__.py", "")
    plant("engine/runtime/__init__.py", "")
    plant("engine/runtime/bad.py", """
        import importlib

        def later():
            return importlib.import_module("steerbridge.gui.app")  # by name, inside a function
        """)
    plant("engine/runtime/a.py", "from . import b\n")
    plant("engine/runtime/b.py", """
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from steerbridge.engine.runtime.a import thing
        """)
    plant("bridge/__init__.py", "")
    plant("bridge/old.py", "from bridge.presets import load_preset\nfrom steerbridge.gui import window\n")
    plant("bridge/cli/__init__.py", "")
    plant("bridge/cli/gui.py", "import importlib\napp = importlib.import_module('steerbridge.gui.app')\n")
    plant("gui/__init__.py", "")
    plant("gui/panel.py", "import torch\n")
    imports = scan(tmp_path, CODE)
    direction = direction_violations(imports)
    assert any("engine.runtime.bad imports steerbridge.gui.app" in v for v in direction)
    assert any("bridge.old imports steerbridge.gui" in v for v in direction)
    assert any("gui.panel imports torch" in v for v in direction)
    assert not any("bridge.cli.gui" in v for v in direction)  # the one allowed place
    assert len(direction) == 3
    assert [v.split(": ", 1)[1] for v in bare_imports(imports)] == [
        "bare import of 'bridge.presets'; use steerbridge.bridge.presets",
        "bare import of 'bridge.presets.load_preset'; use steerbridge.bridge.presets.load_preset"]
    assert cycles(imports, _modules(tmp_path)) == [["steerbridge.engine.runtime.a", "steerbridge.engine.runtime.b"]]
