"""Run Link tests inside a network namespace where only loopback is up.

Ableton Link announces itself by multicast on every network interface. A test
that enables Link must never do so on the machine's real interfaces, so a test
decorated with :func:`loopback_only` runs only where loopback is the one
interface. Anywhere else the whole test module is run once more, inside
``unshare --net`` with ``lo`` up (this needs root or CAP_SYS_ADMIN; CI runs as
root), and each decorated test reports the outcome of its twin in there. Where
no such namespace can be made the tests skip and say why.

Decorated tests must not request fixtures that enable Link (fixtures run in
the outer process too): they build their Link objects in their body.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

__all__ = ["loopback_only", "only_loopback_here"]

_INSIDE = "STEERBRIDGE_LINK_NETNS"
_MODULE_TIMEOUT_S = 1800
_results: dict[str, dict[str, tuple[str, str]]] = {}  # module file -> test name -> (outcome, text)


def only_loopback_here() -> bool:
    """True when this process's network namespace has no interface but ``lo``."""
    return {name for _, name in socket.if_nameindex()} == {"lo"}


def loopback_only(test: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if only_loopback_here():
            return test(*args, **kwargs)
        if os.environ.get(_INSIDE) == "1":
            pytest.fail("inside the test namespace but interfaces other than lo exist: refusing to enable Link")
        module = sys.modules[test.__module__].__file__
        assert module is not None
        results = _run_module_inside(module)
        outcome, text = results.get(test.__name__, results.get("", ("missing", "the test did not run inside")))
        if outcome == "skipped":
            pytest.skip(f"inside the loopback namespace: {text}")
        if outcome != "passed":
            pytest.fail(f"in the loopback namespace this test {outcome}:\n{text}", pytrace=False)
        return None

    # The outer test waits for the whole module to run in the namespace: more than pytest's per-test limit.
    return pytest.mark.timeout(_MODULE_TIMEOUT_S + 60)(wrapper)


def _run_module_inside(module: str) -> dict[str, tuple[str, str]]:
    if module in _results:
        return _results[module]
    reason = _cannot_isolate()
    if reason:
        pytest.skip(f"Link tests need a network namespace with only loopback up, and {reason}; "
                    "run them as root (CI does) — never on the real interfaces")
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "inside.xml"
        env = {**os.environ, _INSIDE: "1"}
        cmd = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, "-m", "pytest",
               module, "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", "-k", "not outside_only"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=_MODULE_TIMEOUT_S,
                              cwd=Path(module).resolve().parent.parent)
        results: dict[str, tuple[str, str]] = {}
        if xml.exists():
            for case in ET.parse(xml).getroot().iter("testcase"):
                name = case.get("name", "").split("[")[0]
                outcome, text = "passed", ""
                for tag in ("failure", "error", "skipped"):
                    node = case.find(tag)
                    if node is not None:
                        outcome = "failed" if tag != "skipped" else "skipped"
                        text = (node.get("message") or "") + "\n" + (node.text or "")
                        break
                results[name] = (outcome, text.strip())
        if not results:
            results = {"": ("failed", f"pytest inside the namespace exited {proc.returncode}:\n"
                                      f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")}
    _results[module] = results
    return results


def _cannot_isolate() -> str:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "`unshare` or `ip` is missing (util-linux, iproute2)"
    try:
        probe = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"], capture_output=True,
                               text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`unshare --net` failed ({exc})"
    if probe.returncode != 0:
        return f"`unshare --net` was refused ({probe.stderr.strip() or probe.returncode})"
    return ""
