"""The shipped docs and patches talk to the real OSC dispatcher."""

from __future__ import annotations

import json
import re
from pathlib import Path

from steerbridge.bridge.control.osc.server import OscServer
from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.presets.model import load_preset

ROOT = Path(__file__).resolve().parents[1]


def addresses_in_maxpat() -> set[str]:
    patch = json.loads((ROOT / "docs" / "max" / "steerbridge.maxpat").read_text())
    found = set()
    for entry in patch["patcher"]["boxes"]:
        text = entry["box"].get("text", "")
        found.update(re.findall(r"(/steer/[a-z]+(?:/[a-z]+)?)", text))
    return found


def test_max_patch_addresses_are_handled():
    preset = load_preset(ROOT / "presets" / "tiny.toml")
    server = OscServer(ControlState(preset), port=0, presets_dir=ROOT / "presets")
    addrs = addresses_in_maxpat() - {"/steer/loop", "/steer/progress", "/steer/error"}  # feedback, not input
    assert {"/steer/play", "/steer/stop", "/steer/subscribe", "/steer/prompt", "/steer/seed"} <= addrs
    assert {f"/steer/knob/{k}" for k in preset.knob_names()} <= addrs
    for addr in addrs:
        assert list(server.dispatcher.handlers_for_address(addr)), addr


def test_readme_documents_every_cli_command():
    from steerbridge.bridge.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert f"steerbridge {name}" in readme, name
