"""A static map of who imports whom in the repository, for the architecture test.

Reads Python files with :mod:`ast`: ``import`` and ``from ... import``
statements anywhere in a module (top level, inside functions, under
``TYPE_CHECKING``), relative imports resolved, and the string given to
``importlib.import_module`` / ``import_module`` / ``__import__``. Nothing is
imported or executed, so a module that would only import another lazily is
still seen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Import", "PACKAGES", "module_name", "imports_in", "scan", "direction_violations", "bare_imports",
           "cycles", "ALLOWED"]

# Repository folder -> the module name it installs as (pyproject's package-dir).
PACKAGES = {"engine": "steerbridge.engine", "bridge": "steerbridge.bridge", "gui": "steerbridge.gui",
            "presets": "steerbridge.presets"}
# Top-level names that must never be imported bare: they are not installed, and
# importing them from a checkout would load a second copy of every module.
BARE = ("engine", "bridge", "gui", "presets")
# Who may not import what (prefixes). gui -> bridge -> engine, and the engine
# knows no I/O of the live side.
RULES = {
    "steerbridge.engine": ("steerbridge.bridge", "steerbridge.gui", "PyQt6", "pyqtgraph", "pythonosc", "mido",
                           "rtmidi", "sounddevice"),
    "steerbridge.bridge": ("steerbridge.gui", "PyQt6", "pyqtgraph"),
    "steerbridge.gui": ("steerbridge.engine", "torch", "stable_audio_tools"),
}
# The explicit exceptions: the CLI's `gui` command is the one place that starts
# the panel (by name, inside the command, so `steerbridge --help` stays Qt-free).
ALLOWED = {("steerbridge.bridge.cli.gui", "steerbridge.gui.app")}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. steerbridge.bridge.cli.gui (or a repo-relative path outside packages)
    target: str  # imported module (or module.attribute for `from m import name`)
    path: Path
    line: int


def module_name(path: Path, root: Path) -> str | None:
    """``engine/runtime/render.py`` -> ``steerbridge.engine.runtime.render``; None outside the packages."""
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[0] not in PACKAGES:
        return None
    parts[0] = PACKAGES[parts[0]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _import_calls(tree: ast.AST) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        fn = node.func
        name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
        arg = node.args[0]
        if name in ("import_module", "__import__") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            yield arg.value, node.lineno
        elif name in ("import_module", "__import__") and isinstance(arg, ast.JoinedStr) and arg.values:
            head = arg.values[0]  # f"steerbridge.bridge.cli.{name}": the fixed part names the package
            if isinstance(head, ast.Constant) and isinstance(head.value, str):
                yield head.value.rstrip("."), node.lineno


def imports_in(path: Path, root: Path) -> list[Import]:
    source = module_name(path, root) or str(path.relative_to(root))
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(source, a.name, path, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = source.split(".") if is_pkg else source.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            found.append(Import(source, base, path, node.lineno))
            found += [Import(source, f"{base}.{a.name}", path, node.lineno) for a in node.names if a.name != "*"]
    found += [Import(source, target, path, line) for target, line in _import_calls(tree)]
    return found


def scan(root: Path, folders: Iterable[str]) -> list[Import]:
    out = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            out += imports_in(path, root)
    return out


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def direction_violations(imports: Iterable[Import]) -> list[str]:
    bad: dict[tuple[Path, int], str] = {}  # one report per statement (`from m import x` names m and m.x)
    for imp in imports:
        for owner, banned in RULES.items():
            if _under(imp.source, owner) and any(_under(imp.target, b) for b in banned):
                if not any(_under(imp.source, s) and _under(imp.target, t) for s, t in ALLOWED):
                    bad.setdefault((imp.path, imp.line), f"{imp.path}:{imp.line}: {imp.source} imports {imp.target}")
    return list(bad.values())


def bare_imports(imports: Iterable[Import]) -> list[str]:
    return [f"{imp.path}:{imp.line}: bare import of {imp.target!r}; use steerbridge.{imp.target}"
            for imp in imports if imp.target.split(".")[0] in BARE]


def cycles(imports: Iterable[Import], modules: set[str]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for imp in imports:
        if imp.source not in graph:
            continue
        target = imp.target if imp.target in modules else imp.target.rpartition(".")[0]
        if target in modules and target != imp.source:
            graph[imp.source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (~150)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups
