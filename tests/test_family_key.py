"""The model family travels with the preset: a `family` key in [model] and `--family` on serve/gui load a diffusers
folder whose files do not name its family, in the worker, the in-process engine and the swap on /steer/preset.

The folder is tiny:sao-diffusers saved for real, with its model_index.json naming a pipeline class diffusers does
not have (as a fine-tune's own subclass would): recognising it by its files fails, naming its family works.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from steerbridge.bridge.presets.model import PresetError, load_preset, save_preset
from steerbridge.engine.runtime.errors import ModelLoadError

from support.serve_knob import exact_render_after_knob, knob_preset

FAMILY = "sao-diffusers"


def _preset(folder: Path, name: str, *, source: str = "pipe", family: str | None = FAMILY) -> Path:
    (folder / name).write_text(knob_preset(source, family=family))
    return folder / name


@pytest.fixture(scope="module")
def anonymous(tmp_path_factory):
    """(tiny model, its folder with an unknown pipeline class name, the folder's parent holding a mood vector)."""
    from steerbridge import engine

    root = tmp_path_factory.mktemp("family")
    model = engine.load_model(f"tiny:{FAMILY}")
    folder = root / "pipe"
    model.adapter.pipe.save_pretrained(folder, safe_serialization=True)
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "MyStableAudioPipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    vector = engine.extract_caa(model, positive=["happy song"], negative=["sad song"], concept="mood",
                                seconds=0.5, steps=2, normalize=True)
    engine.save_vector(vector, root / "mood.safetensors")
    return model, folder, root


def test_the_folder_loads_only_with_its_family_named(anonymous):
    from steerbridge.engine.runtime.source import load_source

    model, folder, _ = anonymous
    with pytest.raises(ModelLoadError, match=r"not a model folder steerbridge knows.*--family FAMILY.*family = "):
        load_source(folder)
    assert load_source(folder, family=FAMILY).fingerprint == model.fingerprint
    with pytest.raises(ModelLoadError, match="do not make a AceStepPipeline, the pipeline of family 'ace-step'"):
        load_source(folder, family="ace-step")


def test_preset_family_key_is_checked_and_saved(anonymous, tmp_path):
    _, folder, root = anonymous
    preset = load_preset(_preset(root, "good.toml"))
    assert preset.model.family == FAMILY
    saved = load_preset(save_preset(preset, tmp_path / "copy.toml").path)  # re-based source, the family kept
    assert saved.model.family == FAMILY and saved.model_source() == str(folder.resolve())
    with pytest.raises(PresetError) as bad:
        load_preset(_preset(root, "bad.toml", family="stable-audio-open"))
    (problem,) = bad.value.problems
    assert problem.startswith(f"{root / 'bad.toml'}:3: model.family: expected a model family, one of ")
    assert "stable-audio-tools" in problem and FAMILY in problem and "audioldm2" in problem
    with pytest.raises(PresetError, match=r":3: model.family: source 'tiny:sa3' is a sa3 model, not 'ace-step'"):
        load_preset(_preset(root, "clash.toml", source="tiny:sa3", family="ace-step"))
    with pytest.raises(PresetError, match="has none of them"):  # no family: the folder must say what it holds
        load_preset(_preset(root, "empty.toml", source=".", family=None))


def test_serve_on_a_preset_with_a_family_plays_the_exact_render(anonymous, tmp_path):
    from steerbridge import engine
    from steerbridge.bridge.audio.wavfile import read_wav
    from steerbridge.engine.runtime.steering import Steering, SteeringTerm

    model, _, root = anonymous
    path, kind, alpha = exact_render_after_knob(_preset(root, "serve.toml"), "mood", 0.25, loops=tmp_path / "loops")
    assert kind == "exact" and alpha == -1.0
    audio, rate = read_wav(Path(path))
    vector = engine.load_vector(root / "mood.safetensors")
    request = engine.RenderRequest(prompt="test loop with piano", seed=7, seconds=0.5, steps=2)
    want = model.render(request, steering=Steering((SteeringTerm(vector, -1.0),))).audio
    assert rate == model.sample_rate and audio.shape == want.shape
    assert np.abs(audio - want).max() < 1e-5


def test_the_worker_and_the_swap_load_the_named_family(anonymous):
    from steerbridge.bridge.engine_link.factory import make_client
    from steerbridge.bridge.live.session import Session, SessionOptions

    model, folder, root = anonymous
    worker = make_client("worker", source=str(folder), family=FAMILY, threads=1)
    try:
        assert worker.start(timeout=300).fingerprint == model.fingerprint  # a spawned process loaded the folder
    finally:
        worker.close()
    options = SessionOptions(output="null", osc=None, midi=None, engine="inprocess", grid="none", progress=False)
    (root / "tiny.toml").write_text(knob_preset(f"tiny:{FAMILY}"))
    with Session(root / "tiny.toml", options=options, say=lambda _: None) as session:
        session.start(prerender=False, timeout=120)
        session.load_preset(_preset(root, "swap.toml"))  # same weights, another model source: a new engine
        assert session.wait_preset(240)
        assert session.engine_phase[0] == "ready" and session.preset.model.family == FAMILY
        assert session.client.info.source == str(folder.resolve())
        assert session.client.info.fingerprint == model.fingerprint
    no_family = make_client("inprocess", source=str(folder))
    with pytest.raises(ModelLoadError, match="--family FAMILY"):
        no_family.start()


def test_family_flag_on_serve_and_gui(anonymous, capsys):
    from steerbridge.bridge.cli import main
    from steerbridge.bridge.cli.session_flags import session_preset

    _, _, root = anonymous
    preset = _preset(root, "other.toml", family="ace-step")
    overridden = session_preset(argparse.Namespace(preset=str(preset), family=FAMILY))
    assert overridden.model.family == FAMILY and overridden.path == preset  # --family wins over the preset's
    assert session_preset(argparse.Namespace(preset=str(preset), family=None)) == preset
    for command in ("serve", "gui"):
        code = main([command, "--preset", str(preset), "--family", "nope", "--output", "null", "--no-midi",
                     "--no-osc"])
        err = capsys.readouterr().err
        assert code == 2 and "--family 'nope' is not a model family" in err and "sao-diffusers" in err


def test_the_panel_plays_a_preset_with_a_family(anonymous, qapp):
    pytest.importorskip("PyQt6")
    import time

    from steerbridge.bridge.live.session import SessionOptions
    from steerbridge.gui.app import create_panel, settings_at

    model, folder, root = anonymous
    options = SessionOptions(output="null", osc=None, midi=None, engine="inprocess", grid="none", progress=False)
    # What `steerbridge gui --family` does to the first preset: this one names no family itself.
    first = load_preset(_preset(root, "panel.toml", family=None)).with_family(FAMILY)
    window = create_panel(first, options=options, settings=settings_at(root / "settings.ini"))
    window.ask_before_close = False
    try:
        deadline = time.monotonic() + 120
        while window.controller.phase not in ("running", "failed") and time.monotonic() < deadline:
            qapp.processEvents()
            time.sleep(0.01)
        assert window.controller.phase == "running", window.banner.text()
        info = window.controller.session.client.info
        assert (info.source, info.fingerprint) == (str(folder.resolve()), model.fingerprint)
    finally:
        window.close()


def test_serve_cli_family_flag_loads_the_folder_in_the_worker(anonymous, tmp_path):
    import signal
    import subprocess
    import sys

    from steerbridge import engine
    from steerbridge.bridge.audio.wavfile import read_wav

    model, _, root = anonymous
    preset = _preset(root, "cli.toml", family=None)  # the preset does not say; the flag does
    base = [sys.executable, "-m", "steerbridge.bridge", "serve", "--preset", str(preset), "--no-osc", "--no-midi",
            "--grid", "none", "--autosave", "off", "--engine-threads", "1", "--json"]
    refused = subprocess.run([*base, "--output", "null"], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "--family FAMILY" in refused.stderr and "Traceback" not in refused.stderr
    loops = tmp_path / "loops"
    proc = subprocess.Popen([*base, "--output", f"wav:{loops}", "--family", FAMILY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stdout.readline() or "{}")
        assert ready.get("event") == "ready" and ready["engine_alive"], proc.stderr.read() if not ready else ready
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    (wav,) = sorted(loops.glob("*.wav"))  # the loop at the knob's default (alpha 0), rendered by the worker
    audio, _ = read_wav(wav)
    plain = model.render(engine.RenderRequest(prompt="test loop with piano", seed=7, seconds=0.5, steps=2)).audio
    assert audio.shape == plain.shape and np.abs(audio - plain).max() < 1e-5


def test_engine_server_family_flag(anonymous, tmp_path):
    import signal
    import subprocess
    import sys

    from steerbridge.bridge.engine_link.wire import write_new_token

    model, folder, _ = anonymous
    token = write_new_token(tmp_path / "engine.token")
    proc = subprocess.Popen([sys.executable, "-m", "steerbridge.bridge", "engine-server", "--model", str(folder),
                             "--family", FAMILY, "--bind", "tcp://127.0.0.1:0", "--token-file", str(token), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stdout.readline() or "{}")
        assert ready.get("event") == "ready", proc.stderr.read()
        assert (ready["model"], ready["fingerprint"]) == (str(folder.resolve()), model.fingerprint)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
