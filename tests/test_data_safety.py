"""Data safety: interrupted saves never leave a broken file; autosave bounds what a crash loses.

Crashes are real: a subprocess writing a big preset (or autosaving a knob it
keeps moving) is SIGKILLed at a random moment, and the parent then loads
what is on disk.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from steerbridge.bridge.control.state import ControlState
from steerbridge.bridge.live.autosave import Autosaver, default_autosave_path, read_autosave, restore
from steerbridge.bridge.presets.model import MidiBinding, load_preset, save_preset, set_midi_binding
from steerbridge.bridge.util.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ROOT / "presets"


@pytest.fixture()
def preset_path(tmp_path: Path) -> Path:
    shutil.copytree(PRESETS / "vectors", tmp_path / "vectors")
    shutil.copy(PRESETS / "tiny.toml", tmp_path / "tiny.toml")
    return tmp_path / "tiny.toml"


# --- atomic writes -----------------------------------------------------------------
def test_a_failing_rename_keeps_the_old_preset_and_leaves_no_temp_file(preset_path: Path, monkeypatch) -> None:
    before = preset_path.read_bytes()
    preset = load_preset(preset_path)

    def crash(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_preset(replace(preset, scene=replace(preset.scene, seed=99)))
    with pytest.raises(OSError):  # MIDI mappings go through the same path
        set_midi_binding(preset, "mood", MidiBinding(channel=2, cc=10))
    monkeypatch.undo()
    assert preset_path.read_bytes() == before
    assert sorted(p.name for p in preset_path.parent.iterdir()) == ["tiny.toml", "vectors"]


def test_a_failing_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["state.json"]


WRITER = r"""
import os, sys, time
from steerbridge.bridge.util.atomic import atomic_write_text
path, text, pause_at = sys.argv[1], open(sys.argv[2]).read(), int(sys.argv[3])
real_replace, i = os.replace, 0

def replace(src, dst):  # save number `pause_at` stops after writing its temp file, before the rename
    if i == pause_at:
        print("mid-save", flush=True)
        time.sleep(60)
    real_replace(src, dst)

os.replace = replace
print("ready", flush=True)
while True:  # rewrite the preset forever, alternating two seeds, until killed
    i += 1
    atomic_write_text(path, text.replace("seed = 1234", f"seed = {1 + i % 2}"))
"""


def test_killing_a_process_mid_save_of_a_big_preset_never_leaves_a_broken_file(preset_path: Path) -> None:
    # ~8 MB of comments make one save take long enough to be killed in the middle of it.
    big = preset_path.read_text() + "".join(f"# filler line {i:08d} {'x' * 80}\n" for i in range(90_000))
    source = preset_path.parent / "big-source.toml"
    source.write_text(big)
    target = preset_path.parent / "live.toml"
    target.write_text(big)
    versions = {big} | {big.replace("seed = 1234", f"seed = {seed}") for seed in (1, 2)}
    rng = random.Random(3)
    seeds, mid_write = set(), 0
    # Two kills at random moments (wherever they land), two that surely land mid-save
    # (the writer announces it is between writing its temp file and renaming it).
    for pause_at in (0, 0, 2, 3):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(source), str(pause_at)],
                                 cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        if pause_at:
            assert child.stdout.readline().strip() == "mid-save"
        else:
            time.sleep(rng.uniform(0.2, 0.8))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        seeds.add(load_preset(target).scene.seed)  # complete and valid: the old or the new version
        assert target.read_text() in versions  # byte for byte one whole version
        for stale in target.parent.glob(".live.toml.*.tmp"):  # a writer killed mid-save leaves its temp file
            mid_write += 1
            stale.unlink()
    assert seeds <= {1, 2, 1234}
    assert mid_write >= 2  # the announced kills really landed in the middle of a save


# --- autosave ----------------------------------------------------------------------
def test_autosave_round_trip_with_a_real_control_state(preset_path: Path, tmp_path: Path) -> None:
    state = ControlState(load_preset(preset_path))
    state.set_value("mood", 0.9)
    state.set_alpha("tempo", -2.0)
    state.set_prompt("dark techno")
    state.set_seed(42)
    state.set_seconds(2.5)
    saver = Autosaver(state, tmp_path / "auto" / "state.json", every_s=0.1)
    assert saver.save_now() and not saver.save_now()  # nothing changed: no second write
    fresh = ControlState(load_preset(preset_path))
    saved = restore(fresh, saver.path)
    assert saved is not None and saved.version == state.version
    a, b = state.snapshot(), fresh.snapshot()
    assert (b.values(), b.prompt, b.seed, b.seconds) == (a.values(), a.prompt, a.seed, a.seconds)


def test_autosave_writes_only_on_change_and_at_most_every_interval(preset_path: Path, tmp_path: Path) -> None:
    state = ControlState(load_preset(preset_path))
    saver = Autosaver(state, tmp_path / "state.json", every_s=0.3).start()
    try:
        deadline = time.monotonic() + 5
        while saver.saves < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert saver.saves == 1
        time.sleep(0.8)
        assert saver.saves == 1  # no change, no write
        start = time.monotonic()
        for i in range(100):  # a knob sweep of 1 s: at most ~1/0.3 + 1 writes
            state.set_value("mood", i / 99)
            time.sleep(0.01)
        while read_autosave(saver.path).knobs["mood"] != 1.0 and time.monotonic() < deadline + 5:
            time.sleep(0.01)
        assert read_autosave(saver.path).knobs["mood"] == 1.0
        assert time.monotonic() - start < 1.0 + 0.3 + 1.0  # landed within the interval (+ slack for load)
        assert 2 <= saver.saves <= 1 + (time.monotonic() - start) / 0.3 + 1
    finally:
        saver.stop()


def test_restore_ignores_another_presets_file_and_garbage(preset_path: Path, tmp_path: Path) -> None:
    state = ControlState(load_preset(preset_path))
    other = tmp_path / "other.json"
    data = {"format_version": 1, "preset": "/elsewhere/x.toml", "knobs": {"mood": 1.0}, "prompt": "p", "seed": 1,
            "seconds": 1.0, "version": 3, "saved_at": 0.0}
    other.write_text(json.dumps(data))
    assert restore(state, other) is None and state.version == 0
    for junk in ("{", "[]", '{"format_version": 1}', json.dumps({**data, "format_version": 9}),
                 json.dumps({**data, "preset": str(preset_path), "knobs": {"mood": "loud"}})):
        other.write_text(junk)
        assert restore(state, other) is None and state.version == 0
    assert restore(state, tmp_path / "missing.json") is None


def test_restore_skips_vanished_knobs_and_clamps(preset_path: Path, tmp_path: Path) -> None:
    state = ControlState(load_preset(preset_path))
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"format_version": 1, "preset": str(preset_path.resolve()),
                                "knobs": {"mood": 7.0, "gone": 0.3}, "prompt": " ", "seed": 5, "seconds": 1.0,
                                "version": 3, "saved_at": 0.0}))
    assert restore(state, path) is not None
    snap = state.snapshot()
    assert snap.knobs["mood"].value == 1.0 and "gone" not in snap.knobs
    assert snap.prompt == load_preset(preset_path).scene.prompt and snap.seed == 5  # empty prompt refused


def test_default_path_is_per_preset_and_outside_its_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    a, b = default_autosave_path("a/demo.toml"), default_autosave_path("b/demo.toml")
    assert a != b and a.parent == b.parent == tmp_path / "state" / "steerbridge"


MOVER = r"""
import sys, time
from steerbridge.bridge.live.autosave import Autosaver
from steerbridge.bridge.presets.model import load_preset
from steerbridge.bridge.control.state import ControlState
state = ControlState(load_preset(sys.argv[1]))
saver = Autosaver(state, sys.argv[2], every_s=float(sys.argv[3])).start()
i = 0
while True:  # a musician turning a knob until the process is killed
    i += 1
    value = (i % 1000) / 1000
    state.set_value("mood", value)
    print(f"{value} {time.time()}", flush=True)
    time.sleep(0.01)
"""


def test_a_crash_loses_at_most_the_last_interval_of_knob_moves(preset_path: Path, tmp_path: Path) -> None:
    every_s = 0.5
    auto = tmp_path / "auto.json"
    child = subprocess.Popen([sys.executable, "-c", MOVER, str(preset_path), str(auto), str(every_s)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    moves: list[tuple[float, float]] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # about 2 s of moves after the first one
            line = child.stdout.readline()
            value, at = map(float, line.split())
            moves.append((value, at))
            if moves[-1][1] - moves[0][1] > 2.0:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    killed_at = time.time()
    state = ControlState(load_preset(preset_path))
    saved = restore(state, auto)
    assert saved is not None
    restored = state.snapshot().knobs["mood"].value
    when = [at for value, at in moves if value == restored]
    assert when, f"restored {restored}, which was never set"
    lost_s = killed_at - max(when)
    assert lost_s < every_s + 1.0, f"lost {lost_s:.2f} s of knob moves"  # the interval plus slack for a loaded CI
